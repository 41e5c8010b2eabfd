// ava 7 on Node 20, TypeScript through tsx. Worker threads cannot load `.ts` files
// (ERR_UNKNOWN_FILE_EXTENSION), so each test file runs in a child process.
export default {
	files: ['test/**/*.ts', '!test/helpers/**'],
	extensions: {ts: 'module'},
	nodeArguments: ['--import=tsx'],
	workerThreads: false,
	timeout: '120s',
};
