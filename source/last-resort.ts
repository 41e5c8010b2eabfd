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
	/** The replicas to try now, in order (routing-policy.ts `lastResortOrder`). */
	readonly candidates: () => readonly Replica[];
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

		for (const replica of options.candidates()) {
			if (tried.has(replica)) {
				continue;
			}

			tried.add(replica);
			try {
				const connection = await replica.pool.acquire();
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
