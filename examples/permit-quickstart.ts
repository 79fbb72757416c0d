import { Permit } from 'permitio';

const agent = process.env.AGENT_URL ?? 'http://127.0.0.1:7766';
const permit = new Permit({ pdp: agent, apiUrl: agent, token: 'secret', proxyFactsViaPdp: true });
await permit.api.resources.create({ key: 'report', name: 'Report', actions: { read: {} } });
await permit.api.roles.create({ key: 'reader', name: 'Reader', permissions: ['report:read'] });
await permit.api.users.sync({ key: 'jane', role_assignments: [{ role: 'reader', tenant: 'default' }] });
console.log(await permit.check('jane', 'read', 'report')); // true
