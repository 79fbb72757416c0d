import { execFileSync } from 'node:child_process';
import { nanoid } from 'nanoid';

/**
 * Test hosts in Linux network namespaces: each host has one link (`eth0`) to a
 * bridge in a namespace of its own (the switch), and the test process reaches
 * them through one more link from its own namespace. Faults are what real
 * links do: loss and one-way cuts (nftables in the host's namespace), a slow
 * link (`tc tbf`), a link down. Only addresses of these namespaces are ever
 * targeted; everything is removed by `destroy()` (and at process exit).
 */
export interface Host {
  name: string;
  ns: string;
  ip: string;
  /** argv prefix that runs a command on this host. */
  exec: string[];
}

const run = (cmd: string, args: string[], input?: string): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], input });

/** Why namespaces cannot be made here (not root, no `ip` or `nft`), or null when they can. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  try {
    run('nft', ['--version']);
  } catch {
    return 'nft (Debian package nftables) is not installed';
  }
  const probe = `fsprobe-${nanoid(6).replace(/[^a-zA-Z0-9]/g, 'x')}`;
  try {
    run('ip', ['netns', 'add', probe]);
    run('ip', ['netns', 'del', probe]);
    return null;
  } catch (e) {
    return `ip netns add failed: ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}`;
  }
}

const live = new Set<TestNetwork>();
process.once('exit', () => {
  for (const n of live) n.destroy();
});

export class TestNetwork {
  private readonly id = nanoid(5).replace(/[^a-zA-Z0-9]/g, 'x');
  private readonly sw = `fs${this.id}-switch`;
  private readonly rootLink = `fs${this.id}r`;
  private readonly subnet: string;
  private readonly hosts = new Map<string, Host>();

  constructor(names: string[]) {
    const used = run('ip', ['-4', 'route']);
    let third = 0;
    do third = 1 + Math.floor(Math.random() * 250);
    while (used.includes(`10.231.${third}.`));
    this.subnet = `10.231.${third}`;
    live.add(this);
    try {
      run('ip', ['netns', 'add', this.sw]);
      this.inSwitch('link', 'add', 'br0', 'type', 'bridge');
      this.inSwitch('link', 'set', 'br0', 'up');
      // The test process's own link to the switch.
      run('ip', ['link', 'add', this.rootLink, 'type', 'veth', 'peer', 'name', `${this.rootLink}p`]);
      this.plug(`${this.rootLink}p`, 'root');
      run('ip', ['addr', 'add', `${this.subnet}.254/24`, 'dev', this.rootLink]);
      run('ip', ['link', 'set', this.rootLink, 'up']);
      names.forEach((name, i) => this.addHost(name, i + 1));
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  host(name: string): Host {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no test host ${name}`);
    return h;
  }

  private inSwitch(...args: string[]): void {
    run('ip', ['-n', this.sw, ...args]);
  }

  private plug(peer: string, name: string): void {
    run('ip', ['link', 'set', peer, 'netns', this.sw]);
    this.inSwitch('link', 'set', peer, 'name', `p-${name}`.slice(0, 15));
    this.inSwitch('link', 'set', `p-${name}`.slice(0, 15), 'master', 'br0');
    this.inSwitch('link', 'set', `p-${name}`.slice(0, 15), 'up');
  }

  private addHost(name: string, n: number): void {
    const ns = `fs${this.id}-${name}`;
    const ip = `${this.subnet}.${10 + n}`;
    run('ip', ['netns', 'add', ns]);
    this.hosts.set(name, { name, ns, ip, exec: ['ip', 'netns', 'exec', ns] });
    const tmp = `fs${this.id}h${n}`;
    run('ip', ['link', 'add', tmp, 'type', 'veth', 'peer', 'name', `${tmp}p`]);
    run('ip', ['link', 'set', tmp, 'netns', ns]);
    this.plug(`${tmp}p`, name);
    run('ip', ['-n', ns, 'link', 'set', tmp, 'name', 'eth0']);
    run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }

  /** nftables rules in the host's namespace, in a table of their own that `heal` removes. */
  private nft(host: string, rules: { input?: string[]; output?: string[] }): void {
    const h = this.host(host);
    const chain = (hook: 'input' | 'output', body: string[] = []) => `  chain ${hook} { type filter hook ${hook} priority 0; policy accept;\n${body.map((r) => `    ${r}\n`).join('')}  }\n`;
    run('ip', ['netns', 'exec', h.ns, 'nft', '-f', '-'], `table inet chaos\ndelete table inet chaos\ntable inet chaos {\n${chain('input', rules.input)}${chain('output', rules.output)}}\n`);
  }

  /** Drops `percent` of the packets the host receives and of those it sends. */
  loss(host: string, percent: number): void {
    const r = `numgen random mod 100 < ${percent} drop`;
    this.nft(host, { input: [r], output: [r] });
  }

  /** One direction cut: packets from `from` to `to` are dropped as they leave `from`; the other way still flows. */
  cutOneWay(from: string, to: string): void {
    this.nft(from, { output: [`ip daddr ${this.host(to).ip} drop`] });
  }

  /** Both directions between `a` and each of `others` cut at `a`; `a` still reaches every other host. */
  isolate(a: string, others: string[]): void {
    const ips = others.map((o) => this.host(o).ip).join(', ');
    this.nft(a, { input: [`ip saddr { ${ips} } drop`], output: [`ip daddr { ${ips} } drop`] });
  }

  /** A slow link: the host sends at most `rate` (e.g. "256kbit"), queueing up to 400 ms. */
  slow(host: string, rate: string): void {
    run('ip', ['netns', 'exec', this.host(host).ns, 'tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', 'tbf', 'rate', rate, 'burst', '16kbit', 'latency', '400ms']);
  }

  linkDown(host: string): void {
    run('ip', ['-n', this.host(host).ns, 'link', 'set', 'eth0', 'down']);
  }

  linkUp(host: string): void {
    run('ip', ['-n', this.host(host).ns, 'link', 'set', 'eth0', 'up']);
  }

  /** Every fault on `host` undone: rules gone, no shaping, link up. */
  heal(host: string): void {
    const h = this.host(host);
    run('ip', ['netns', 'exec', h.ns, 'nft', '-f', '-'], 'table inet chaos\ndelete table inet chaos\n');
    try {
      run('ip', ['netns', 'exec', h.ns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root']);
    } catch {
      // no qdisc of ours
    }
    this.linkUp(host);
  }

  healAll(): void {
    for (const name of this.hosts.keys()) this.heal(name);
  }

  /** Removes every namespace and link of this network; processes still inside lose their network. */
  destroy(): void {
    if (!live.delete(this)) return;
    const quiet = (args: string[]) => {
      try {
        run('ip', args);
      } catch {
        // already gone
      }
    };
    for (const h of this.hosts.values()) quiet(['netns', 'del', h.ns]);
    quiet(['link', 'del', this.rootLink]);
    quiet(['netns', 'del', this.sw]);
  }
}
