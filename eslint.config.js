import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
	{ignores: ['dist/', 'node_modules/', 'test/artifacts/']},
	js.configs.recommended,
	...tseslint.configs.strictTypeChecked,
	{
		languageOptions: {
			parserOptions: {projectService: {allowDefaultProject: ['*.js', 'test/fixtures/*.cjs']}, tsconfigRootDir: import.meta.dirname},
			globals: {process: 'readonly', console: 'readonly', URL: 'readonly', setTimeout: 'readonly', setImmediate: 'readonly', require: 'readonly'},
		},
		rules: {
			// `||` turns a legitimate 0 or '' into the default: use `??` (STYLE.md).
			'@typescript-eslint/prefer-nullish-coalescing': 'error',
			'@typescript-eslint/no-explicit-any': 'error',
			'@typescript-eslint/consistent-type-imports': ['error', {fixStyle: 'inline-type-imports'}],
			'@typescript-eslint/restrict-template-expressions': ['error', {allowNumber: true, allowBoolean: true}],
			'no-console': 'error',
			// `http.createServer(app.callback())` and Koa handlers return promises on purpose.
			'@typescript-eslint/no-misused-promises': ['error', {checksVoidReturn: {arguments: false}}],
		},
	},
	{
		// Scripts, tests, examples and benchmarks talk to a terminal.
		files: ['scripts/**', 'test/**', 'example/**', 'bench/**'],
		rules: {'no-console': 'off'},
	},
	{
		// supertest types every response body as `any`; the assertions check its shape.
		files: ['test/**'],
		rules: {
			'@typescript-eslint/no-unsafe-member-access': 'off',
			'@typescript-eslint/no-unsafe-assignment': 'off',
			'@typescript-eslint/no-unsafe-argument': 'off',
		},
	},
	{
		files: ['**/*.js', '**/*.cjs'],
		...tseslint.configs.disableTypeChecked,
	},
	{
		files: ['test/fixtures/*.cjs'],
		rules: {'@typescript-eslint/no-require-imports': 'off'},
	},
);
