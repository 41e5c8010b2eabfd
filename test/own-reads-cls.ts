// findOrCreate under Sequelize's CLS (`Sequelize.useCLS`), which is process-wide: kept in a
// file (so a process) of its own. The only replica replays 1.5 s late.
import test from 'ava';
import {createNamespace} from 'cls-hooked';
import {DataTypes, Sequelize} from 'sequelize';
import {sharedCluster} from './helpers/shared-cluster.js';
import {laggingSequelize, syncEverywhere, whileAnotherSessionInserts} from './helpers/lagging.js';
import {uniqueName} from './helpers/sequelize.js';

Sequelize.useCLS(createNamespace('sequelize-multidb-test'));
const cluster = await sharedCluster();

function setup(t: {teardown: (fn: () => Promise<void>) => void}) {
	const {sequelize} = laggingSequelize(t, cluster);
	const Item = sequelize.define('Item', {key: {type: DataTypes.STRING, unique: true}, count: DataTypes.INTEGER}, {tableName: uniqueName('items'), timestamps: false});
	return {sequelize, Item};
}

test('with CLS, findOrCreate that loses a race to another INSERT returns the other row', async t => {
	const {Item} = setup(t);
	await syncEverywhere(cluster, Item);
	const [item, created] = await whileAnotherSessionInserts(cluster, Item.getTableName() as string, {key: 'raced', count: 4}, async () => Item.findOrCreate({where: {key: 'raced'}}));
	t.false(created);
	t.is(item.get('count'), 4);
});

test('with CLS, findOrCreate inside a managed transaction finds a row created just before', async t => {
	const {sequelize, Item} = setup(t);
	await syncEverywhere(cluster, Item);
	await Item.create({key: 'before', count: 2});
	const [item, created] = await sequelize.transaction(async () => Item.findOrCreate({where: {key: 'before'}}));
	t.false(created);
	t.is(item.get('count'), 2);
});

test('with CLS, reload() right after create() inside and outside a managed transaction finds the row', async t => {
	const {sequelize, Item} = setup(t);
	await syncEverywhere(cluster, Item);
	const outside = await Item.create({key: 'outside', count: 1});
	t.is((await outside.reload()).get('count'), 1);
	const inside = await sequelize.transaction(async () => {
		const item = await Item.create({key: 'inside', count: 3});
		return item.reload();
	});
	t.is(inside.get('count'), 3);
});
