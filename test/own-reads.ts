// Sequelize's own reads around its writes, outside any request, with the only replica
// replaying 1.5 s late: each must see the write it follows (rule 8).
import test from 'ava';
import {DataTypes, QueryTypes, type Model, type Sequelize} from 'sequelize';
import {sharedCluster} from './helpers/shared-cluster.js';
import {laggingSequelize, syncEverywhere, whileAnotherSessionInserts} from './helpers/lagging.js';
import {recordServers, uniqueName} from './helpers/sequelize.js';

const cluster = await sharedCluster();

function defineItem(sequelize: Sequelize, options: {paranoid?: boolean} = {}) {
	return sequelize.define('Item', {
		key: {type: DataTypes.STRING, unique: true},
		count: {type: DataTypes.INTEGER, defaultValue: 0},
	}, {tableName: uniqueName('items'), timestamps: options.paranoid === true, paranoid: options.paranoid === true});
}

/** Rows of a table as the primary has them, asked directly. */
async function onPrimary(sequelize: Sequelize, sql: string): Promise<Array<Record<string, unknown>>> {
	return sequelize.query(sql, {type: QueryTypes.SELECT, useMaster: true});
}

test('reload() right after create() finds the row', async t => {
	const {sequelize} = laggingSequelize(t, cluster);
	const Item = defineItem(sequelize);
	await syncEverywhere(cluster, Item);
	const item = await Item.create({key: 'a', count: 1});
	await item.reload();
	t.is(item.get('count'), 1);
});

test('reload() after an update, increment and decrement returns the new values', async t => {
	const {sequelize} = laggingSequelize(t, cluster);
	const Item = defineItem(sequelize);
	await syncEverywhere(cluster, Item);
	const item = await Item.create({key: 'a', count: 1});
	await Item.update({count: 5}, {where: {key: 'a'}});
	t.is((await item.reload()).get('count'), 5);
	await item.increment('count', {by: 3});
	t.is((await item.reload()).get('count'), 8);
	await item.decrement('count');
	t.is((await item.reload()).get('count'), 7);
});

test('reload() after restore() finds the restored row', async t => {
	const {sequelize} = laggingSequelize(t, cluster);
	const Item = defineItem(sequelize, {paranoid: true});
	await syncEverywhere(cluster, Item);
	const item = await Item.create({key: 'a'});
	await item.destroy();
	await item.restore();
	await item.reload();
	t.is(item.get('deletedAt'), null);
});

test('findCreateFind whose INSERT meets a unique violation returns the row, its first read still on the replica', async t => {
	const {sequelize} = laggingSequelize(t, cluster);
	const Item = defineItem(sequelize);
	await syncEverywhere(cluster, Item);
	await Item.create({key: 'taken', count: 3});
	const log = recordServers(sequelize, cluster);
	const [found, created] = await Item.findCreateFind({where: {key: 'taken'}});
	t.false(created);
	t.is(found.get('count'), 3);
	const reads = log.filter(entry => entry.sql.startsWith('SELECT'));
	t.deepEqual(reads.map(entry => entry.server), ['replica2', 'primary']);
});

test('findCreateFind that finds the row reads it on the replica only', async t => {
	const {sequelize} = laggingSequelize(t, cluster);
	const Item = defineItem(sequelize);
	await syncEverywhere(cluster, Item);
	await Item.create({key: 'old'});
	await syncEverywhere(cluster);
	const log = recordServers(sequelize, cluster);
	const [, created] = await Item.findCreateFind({where: {key: 'old'}});
	t.false(created);
	t.deepEqual(log.map(entry => entry.server), ['replica2']);
});

test('findOrCreate that loses a race to another INSERT returns the other row', async t => {
	const {sequelize} = laggingSequelize(t, cluster);
	const Item = defineItem(sequelize);
	await syncEverywhere(cluster, Item);
	const [item, created] = await whileAnotherSessionInserts(cluster, Item.getTableName() as string, {key: 'raced', count: 9}, async () => Item.findOrCreate({where: {key: 'raced'}}));
	t.false(created);
	t.is(item.get('count'), 9);
});

test('update, destroy and restore with individualHooks run their hooks on rows just written', async t => {
	const {sequelize} = laggingSequelize(t, cluster);
	const Item = defineItem(sequelize, {paranoid: true});
	await syncEverywhere(cluster, Item);
	const seen: string[] = [];
	for (const hook of ['beforeUpdate', 'beforeDestroy', 'beforeRestore'] as const) {
		Item.addHook(hook, (instance: Model) => {
			seen.push(`${hook} ${String(instance.get('key'))}`);
		});
	}

	await Item.create({key: 'fresh'});
	await Item.update({count: 1}, {where: {key: 'fresh'}, individualHooks: true});
	await Item.destroy({where: {key: 'fresh'}, individualHooks: true});
	await Item.restore({where: {key: 'fresh'}, individualHooks: true});
	t.deepEqual(seen, ['beforeUpdate fresh', 'beforeDestroy fresh', 'beforeRestore fresh']);
});

test('a belongsToMany setter, adder and create helper see the links just written', async t => {
	const {sequelize} = laggingSequelize(t, cluster);
	const Post = sequelize.define('Post', {title: DataTypes.STRING}, {tableName: uniqueName('posts'), timestamps: false});
	const Tag = sequelize.define('Tag', {name: DataTypes.STRING}, {tableName: uniqueName('tags'), timestamps: false});
	const PostTag = sequelize.define('PostTag', {}, {tableName: uniqueName('post_tags'), timestamps: false});
	Post.belongsToMany(Tag, {through: PostTag});
	await syncEverywhere(cluster, Post, Tag, PostTag);
	type Tagged = Model & {setTags(tags: Model[]): Promise<void>; addTag(tag: Model): Promise<void>; createTag(values: object): Promise<Model>};
	const post = await Post.create({title: 'p'}) as Tagged;
	const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(async name => Tag.create({name})));
	await post.setTags([a, b]);
	// Read on a stale replica, the current links would be none: `b` inserted twice, `a` kept.
	await post.setTags([b, c]);
	await post.addTag(c);
	const d = await post.createTag({name: 'd'});
	await post.addTag(d);
	const links = await onPrimary(sequelize, `SELECT t.name FROM "${PostTag.getTableName() as string}" l JOIN "${Tag.getTableName() as string}" t ON t.id = l."TagId" ORDER BY t.name`);
	t.deepEqual(links.map(row => row.name), ['b', 'c', 'd']);
});

test('hasMany and hasOne setters see the links just written', async t => {
	const {sequelize} = laggingSequelize(t, cluster);
	const User = sequelize.define('User', {name: DataTypes.STRING}, {tableName: uniqueName('users'), timestamps: false});
	const Task = sequelize.define('Task', {name: DataTypes.STRING}, {tableName: uniqueName('tasks'), timestamps: false});
	const Profile = sequelize.define('Profile', {name: DataTypes.STRING}, {tableName: uniqueName('profiles'), timestamps: false});
	User.hasMany(Task);
	User.hasOne(Profile);
	await syncEverywhere(cluster, User, Task, Profile);
	type Linked = Model & {setTasks(tasks: Model[]): Promise<void>; setProfile(profile: Model): Promise<void>};
	const user = await User.create({name: 'u'}) as Linked;
	const [first, second] = await Promise.all(['1', '2'].map(async name => Task.create({name})));
	await user.setTasks([first, second]);
	await user.setTasks([second]);
	const [old, current] = await Promise.all(['old', 'new'].map(async name => Profile.create({name})));
	await user.setProfile(old);
	await user.setProfile(current);
	const userId = String(user.get('id'));
	const tasks = await onPrimary(sequelize, `SELECT name FROM "${Task.getTableName() as string}" WHERE "UserId" = ${userId} ORDER BY name`);
	t.deepEqual(tasks.map(row => row.name), ['2']);
	const profiles = await onPrimary(sequelize, `SELECT name FROM "${Profile.getTableName() as string}" WHERE "UserId" = ${userId}`);
	t.deepEqual(profiles.map(row => row.name), ['new']);
});

test('a model defined before multidb() and a model that inherits from a routed one are covered too', async t => {
	const sequelize = (await import('./helpers/sequelize.js')).newSequelize(cluster, {replicas: [cluster.replicas[1]]});
	t.teardown(async () => sequelize.close());
	const Early = defineItem(sequelize);
	const {multidb} = await import('../source/index.js');
	multidb(sequelize, {monitorIntervalMs: 0});
	class Special extends Early {}
	Special.init({key: {type: DataTypes.STRING, unique: true}, count: DataTypes.INTEGER}, {sequelize, tableName: uniqueName('special'), timestamps: false});
	await syncEverywhere(cluster, Early, Special);
	for (const model of [Early, Special]) {
		const item = await model.create({key: 'k', count: 2});
		t.is((await item.reload()).get('count'), 2, model.name);
	}
});

test('ordinary reads stay on the replica: only the read-after-write methods are moved', async t => {
	const {sequelize} = laggingSequelize(t, cluster);
	const Item = defineItem(sequelize);
	await syncEverywhere(cluster, Item);
	const log = recordServers(sequelize, cluster);
	await Item.findAll();
	await Item.findOne({where: {key: 'x'}});
	await Item.count();
	t.deepEqual(log.map(entry => entry.server), ['replica2', 'replica2', 'replica2']);
});
