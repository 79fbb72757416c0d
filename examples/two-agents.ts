import { createClient } from '@factsync/sdk';

const token = process.env.AGENT_API_TOKEN; // when the agents require one
const a = createClient({ url: process.env.AGENT_URL ?? 'http://127.0.0.1:7766', token });
const b = createClient({ url: process.env.SECOND_AGENT_URL ?? 'http://127.0.0.1:7767', token });
await a.policy.resources.upsert('invoice', { actions: ['approve'] });
await a.policy.roles.upsert('approver', { permissions: ['invoice:approve'] });
const written = await a.users.sync('jane@smith.com', { roles: [{ role: 'approver' }] });
console.log(await b.check('jane@smith.com', 'approve', 'invoice', { atLeast: written })); // true: written on one agent, checked on another
