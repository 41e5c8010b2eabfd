import {setTimeout as delay} from 'node:timers/promises';
import test from 'ava';
import type {Sequelize} from 'sequelize';
import {isPinned, multidb, pin, unpin, usePrimaryDb} from '../source/index.js';
import {runInNewFlow} from '../source/context.js';
import {sharedCluster} from './helpers/shared-cluster.js';
import {answeringServer, countBy, newSequelize} from './helpers/sequelize.js';

const cluster = await sharedCluster();

function setup(t: {teardown: (fn: () => Promise<void>) => void}): Sequelize {
	const sequelize = newSequelize(cluster);
	t.teardown(async () => sequelize.close());
	multidb(sequelize);
	return sequelize;
}

test('usePrimaryDb sends every read inside it to the primary and returns fn\'s result', async t => {
	const sequelize = setup(t);
	const result = await usePrimaryDb(async () => {
		const servers = [await answeringServer(sequelize, cluster), await answeringServer(sequelize, cluster), await answeringServer(sequelize, cluster)];
		return {servers};
	});
	t.deepEqual(result, {servers: ['primary', 'primary', 'primary']});
	t.true((await answeringServer(sequelize, cluster)).startsWith('replica'));
});

test('usePrimaryDb nests: an inner block ending leaves the outer one in force', async t => {
	const sequelize = setup(t);
	const servers = await usePrimaryDb(async () => {
		await usePrimaryDb(async () => answeringServer(sequelize, cluster));
		// The seed's use_primary_db unpinned the thread here.
		t.true(isPinned());
		return answeringServer(sequelize, cluster);
	});
	t.is(servers, 'primary');
	t.false(isPinned());
});

test('usePrimaryDb restores the previous state when fn throws', async t => {
	const sequelize = setup(t);
	await t.throwsAsync(usePrimaryDb(async () => {
		t.true(isPinned());
		await delay(1);
		throw new Error('boom');
	}), {message: 'boom'});
	t.false(isPinned());
	t.true((await answeringServer(sequelize, cluster)).startsWith('replica'));
});

test('usePrimaryDb works with synchronous functions too', t => {
	t.is(usePrimaryDb(() => isPinned()), true);
	t.false(isPinned());
});

test('usePrimaryDb.wrap returns a function that runs inside usePrimaryDb, keeping this and arguments', async t => {
	const sequelize = setup(t);
	async function read(this: {prefix: string}, suffix: string) {
		return `${this.prefix}${await answeringServer(sequelize, cluster)}${suffix}`;
	}

	const target = {prefix: 'server:'};
	const wrapped = usePrimaryDb.wrap(read);
	t.is(await wrapped.call(target, '!'), 'server:primary!');
});

test('usePrimaryDb rejects what is not a function', t => {
	t.throws(() => { usePrimaryDb('nope' as unknown as () => void); }, {instanceOf: TypeError, message: 'Expected `fn` to be a function, got "nope" (string)'});
	t.throws(() => usePrimaryDb.wrap(undefined as unknown as () => void), {instanceOf: TypeError, message: 'Expected `fn` to be a function, got undefined'});
});

test('concurrent flows do not leak: 100 interleaved flows, half in usePrimaryDb', async t => {
	const sequelize = setup(t);
	const results = await Promise.all(Array.from({length: 100}, async (_, index) => {
		const primary = index % 2 === 0;
		const read = async () => {
			await delay(Math.random() * 20);
			return answeringServer(sequelize, cluster);
		};

		const server = primary ? await usePrimaryDb(read) : await read();
		return {primary, server};
	}));
	const leaks = results.filter(({primary, server}) => primary !== (server === 'primary'));
	t.is(leaks.length, 0);
	t.deepEqual(countBy(results.filter(result => !result.primary).map(result => result.server)), {replica1: 25, replica2: 25});
});

test('pin() pins the current flow until unpin(), and only that flow', async t => {
	const sequelize = setup(t);
	const [pinnedFlow, otherFlow] = await Promise.all([
		runInNewFlow(async () => {
			t.false(isPinned());
			pin();
			await delay(10);
			const whilePinned = await answeringServer(sequelize, cluster);
			unpin();
			const afterUnpin = await answeringServer(sequelize, cluster);
			return {whilePinned, afterUnpin, pinnedAfter: isPinned()};
		}),
		runInNewFlow(async () => {
			await delay(5);
			return {pinned: isPinned(), server: await answeringServer(sequelize, cluster)};
		}),
	]);
	t.is(pinnedFlow.whilePinned, 'primary');
	t.true(pinnedFlow.afterUnpin.startsWith('replica'));
	t.false(pinnedFlow.pinnedAfter);
	t.false(otherFlow.pinned);
	t.true(otherFlow.server.startsWith('replica'));
});

test('unpin() inside usePrimaryDb does not end the block', async t => {
	const sequelize = setup(t);
	const server = await runInNewFlow(async () => {
		pin();
		return usePrimaryDb(async () => {
			unpin();
			return answeringServer(sequelize, cluster);
		});
	});
	t.is(server, 'primary');
});

test('pin() inside usePrimaryDb pins the whole flow', async t => {
	const sequelize = setup(t);
	const server = await runInNewFlow(async () => {
		usePrimaryDb(() => {
			pin();
		});
		return answeringServer(sequelize, cluster);
	});
	t.is(server, 'primary');
});

test('pin() outside any flow pins the rest of the current async execution', async t => {
	const sequelize = setup(t);
	// A fresh async resource so this test's context does not reach other tests.
	const server = await new Promise<string>((resolve, reject) => {
		setImmediate(() => {
			pin();
			answeringServer(sequelize, cluster).then(resolve, reject);
		});
	});
	t.is(server, 'primary');
	t.false(isPinned());
});
