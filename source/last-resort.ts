// The last resort of a read that no replica in rotation and no primary can take: the
// replicas out of rotation, the likeliest first. Before the read fails, every node is asked
// its role once more, since what the router knows of them can be a monitor round old: an
// old primary that came back as a standby (rebuilt after a failover) is kept from reads
// until the monitor has seen it in recovery, and it may be the only server up.
import createDebug from 'debug';
import {isConnectFailure} from './failure.js';
import type {ReadAttempt} from './read-attempt.js';
import type {Replica} from './replica.js';
import {asAcquireError, type PooledConnection} from './sequelize-internals.js';

const log = createDebug('sequelize-multidb:pool');

export interface LastResortOptions {
	readonly attempt: ReadAttempt;
	/** Replicas that failed this read already, and why. */
	readonly failed: ReadonlyMap<Replica, string> | undefined;
	/** The replicas to try, in order, leaving out `excluded` (routing-policy.ts `lastResortOrder`). */
	readonly order: (excluded: ReadonlyMap<Replica, string> | undefined) => readonly Replica[];
	/** A connection got from `replica`, handed over for the read (watched, counted). */
	readonly use: (replica: Replica, connection: PooledConnection) => PooledConnection;
	readonly onConnectFailure: (replica: Replica, error: unknown) => void;
	/** Asks every node its role and lag now (a monitor round, shared by concurrent reads). */
	readonly askRoles: () => Promise<void>;
}

/** A connection to a replica out of rotation that answered, or undefined when none did. */
export async function acquireLastResort(options: LastResortOptions): Promise<PooledConnection | undefined> {
	const tried = new Set<Replica>();
	for (const pass of ['as known', 'roles asked again'] as const) {
		if (pass === 'roles asked again') {
			await options.askRoles().catch(() => undefined);
		}

		// After the probes, a replica that failed this read but answers now is tried too: one
		// connection's death (a killed backend) is not its server's.
		const excluded = pass === 'as known' ? options.failed : answeringNow(options.failed);
		for (const replica of options.order(excluded)) {
			if (tried.has(replica)) {
				continue;
			}

			tried.add(replica);
			try {
				const connection = await replica.acquire();
				options.attempt.reason = 'last-resort';
				log('last resort (%s): read on %s (%s)', pass, replica.name, replica.state);
				return options.use(replica, connection);
			} catch (error) {
				if (!isConnectFailure(error)) {
					throw asAcquireError(error);
				}

				options.onConnectFailure(replica, error);
			}
		}
	}

	return undefined;
}

function answeringNow(failed: ReadonlyMap<Replica, string> | undefined): ReadonlyMap<Replica, string> | undefined {
	return failed && new Map([...failed].filter(([replica]) => replica.state !== 'up'));
}
