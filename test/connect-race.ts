// A backend terminated just as its connection completes: the server's ReadyForQuery and its
// "terminating connection" error arrive in one network read. Sequelize attaches its error
// listener a microtask after the client is ready, so node-postgres emitted that error with
// no listener, which ends the process (the soak hit it twice). The fault is made for real, at
// the protocol level: a TCP relay in front of the real primary passes the server's bytes
// through, and after the first ReadyForQuery appends the FATAL 57P01 PostgreSQL sends on
// pg_terminate_backend, in the same write, then closes.
import net from 'node:net';
import test from 'ava';
import {QueryTypes, Sequelize} from 'sequelize';
import {multidb} from '../source/index.js';
import {sharedCluster} from './helpers/shared-cluster.js';

/** PostgreSQL's ErrorResponse for a terminated backend. */
function terminatedBackend(): Buffer {
	const fields = Buffer.from(['SFATAL', 'VFATAL', 'C57P01', 'Mterminating connection due to administrator command'].map(field => `${field}\0`).join('') + '\0');
	const header = Buffer.alloc(5);
	header.write('E', 0);
	header.writeInt32BE(4 + fields.length, 1);
	return Buffer.concat([header, fields]);
}

/** A relay to `target` that kills each connection right after its startup completes. */
async function terminatingRelay(target: {host: string; port: number}): Promise<{port: number; close: () => void}> {
	const sockets = new Set<net.Socket>();
	const relay = net.createServer(client => {
		sockets.add(client);
		const server = net.connect(target.port, target.host);
		sockets.add(server);
		client.pipe(server);
		let pending = Buffer.alloc(0);
		server.on('data', (chunk: Buffer) => {
			pending = Buffer.concat([pending, chunk]);
			// Walk whole messages (type byte, then a length that counts itself) to ReadyForQuery.
			for (let offset = 0; offset + 5 <= pending.length;) {
				const end = offset + 1 + pending.readInt32BE(offset + 1);
				if (end > pending.length) {
					break;
				}

				if (pending[offset] === 'Z'.charCodeAt(0)) {
					client.end(Buffer.concat([pending.subarray(0, end), terminatedBackend()]));
					server.destroy();
					return;
				}

				offset = end;
			}
		});
		const close = () => {
			client.destroy();
			server.destroy();
		};

		client.on('error', close);
		server.on('error', close);
	});
	await new Promise<void>(resolve => {
		relay.listen(0, '127.0.0.1', resolve);
	});
	return {
		port: (relay.address() as net.AddressInfo).port,
		close() {
			relay.close();
			for (const socket of sockets) {
				socket.destroy();
			}
		},
	};
}

test('a connection terminated in the same read as its ReadyForQuery fails its query, and the process lives', async t => {
	const cluster = await sharedCluster();
	const relay = await terminatingRelay(cluster.primary);
	t.teardown(relay.close);
	const {primary} = cluster;
	const sequelize = new Sequelize(primary.database, primary.username, primary.password, {
		dialect: 'postgres',
		logging: false,
		replication: {write: {host: '127.0.0.1', port: relay.port}, read: cluster.replicas.map(replica => ({host: replica.host, port: replica.port}))},
	});
	t.teardown(async () => sequelize.close());
	multidb(sequelize, {monitorIntervalMs: 0});
	let uncaught: unknown;
	const onUncaught = (error: unknown) => {
		uncaught = error;
	};

	// ava fails a test on an uncaught exception anyway; this says which one.
	process.on('uncaughtException', onUncaught);
	t.teardown(() => process.off('uncaughtException', onUncaught));
	for (let attempt = 0; attempt < 5; attempt++) {
		await t.throwsAsync(sequelize.query('SELECT 1', {type: QueryTypes.SELECT, useMaster: true}));
	}

	await new Promise(resolve => {
		setTimeout(resolve, 100);
	});
	t.is(uncaught, undefined);
	// Reads on the replicas are not touched.
	t.deepEqual(await sequelize.query('SELECT 1 AS one', {type: QueryTypes.SELECT}), [{one: 1}]);
});
