/** A real single-node Slurm cluster for tests (configuration and order from
 * shared/notes/slurm-single-node.md): munged, slurmctld and slurmd in a temporary folder as
 * children of the test process, on free ports so that several test runs can share a machine. */
import { join } from "node:path";
import { IN_CI } from "../helpers.ts";

export interface SlurmCluster {
  /** The scratch folder holding the configuration, state, spool and logs. */
  dir: string;
  /** `<dir>/slurm.conf`; SLURM_CONF points at it while the cluster runs. */
  conf: string;
  /** Environment for Slurm commands started by hand ({ SLURM_CONF }). */
  env: Record<string, string>;
}

const SERVER = ["munged", "slurmctld", "slurmd"];
const CLIENT = ["sbatch", "squeue", "scancel", "scontrol", "sinfo"];

/** `name` on PATH or in the sbin folders (Debian puts the daemons there, off a user's PATH). */
function findProgram(name: string): string | undefined {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin", "/sbin"];
  for (const dir of dirs.filter((d) => d)) {
    try {
      if (Deno.statSync(join(dir, name)).isFile) return join(dir, name);
    } catch { /* not here */ }
  }
  return undefined;
}

/** A daemon started in the foreground, its stderr kept (bounded) for failure messages. */
class Daemon {
  readonly child: Deno.ChildProcess;
  readonly status: Promise<Deno.CommandStatus>;
  exited: Deno.CommandStatus | undefined;
  private err = "";

  constructor(readonly name: string, program: string, args: string[], env: Record<string, string>) {
    this.child = new Deno.Command(program, {
      args,
      env,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    })
      .spawn();
    this.status = this.child.status.then((s) => (this.exited = s));
    this.drain();
  }

  private async drain(): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of this.child.stderr) {
      this.err = (this.err + decoder.decode(chunk, { stream: true })).slice(-4000);
    }
  }

  get stderr(): string {
    return this.err.trim();
  }

  /** SIGTERM, then SIGKILL when it has not exited after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.exited) return;
    try {
      this.child.kill("SIGTERM");
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, graceMs);
    await this.status;
    clearTimeout(timer);
  }
}

/** `n` distinct TCP ports free now (all bound at once, then released). */
function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  listeners.forEach((l) => l.close());
  return ports;
}

async function run(
  program: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(program, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  const d = new TextDecoder();
  return { code: r.code, out: (d.decode(r.stdout) + d.decode(r.stderr)).trim() };
}

/** Polls `check` until true; a failure names `what`, the daemons' stderr and the log tail. */
async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  daemons: Daemon[],
  logDir: string,
): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    const dead = daemons.find((d) => d.exited);
    if (dead || Date.now() - start > timeoutMs) {
      const logs = [...Deno.readDirSync(logDir)].map((e) => {
        const text = Deno.readTextFileSync(join(logDir, e.name)).trim().split("\n");
        return `${e.name}:\n  ${text.slice(-15).join("\n  ")}`;
      });
      const why = dead
        ? `${dead.name} exited (${dead.exited?.code}): ${dead.stderr || "no message"}`
        : `not after ${timeoutMs / 1000} s`;
      throw new Error(`slurm test cluster: ${what}: ${why}\n${logs.join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function slurmConf(t: string, ctldPort: number, slurmdPort: number): string {
  const cpus = Math.max(1, navigator.hardwareConcurrency);
  return `ClusterName=citest
SlurmctldHost=localhost
SlurmctldPort=${ctldPort}
SlurmdPort=${slurmdPort}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${t}/munge/munge.socket.2
StateSaveLocation=${t}/state
SlurmdSpoolDir=${t}/spool
SlurmctldPidFile=${t}/slurmctld.pid
SlurmdPidFile=${t}/slurmd.pid
SlurmctldLogFile=${t}/log/slurmctld.log
SlurmdLogFile=${t}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerParameters=bf_interval=1
NodeName=localhost NodeAddr=127.0.0.1 CPUs=${cpus} Sockets=1 CoresPerSocket=${cpus} ThreadsPerCore=1 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
`;
}

/** Runs `fn` with a started cluster (SLURM_CONF set in this process's environment meanwhile, so
 * sbatch, squeue and child processes find it), then cancels every job and stops the daemons in
 * reverse order, whatever happened. When the Slurm or munge programs are missing: skips with a
 * message and returns undefined, except under CI=true where that fails. */
export async function withSlurmCluster<T>(
  fn: (cluster: SlurmCluster) => Promise<T>,
): Promise<T | undefined> {
  const programs = new Map([...SERVER, ...CLIENT].map((n) => [n, findProgram(n)]));
  const missing = [...programs].filter(([, p]) => !p).map(([n]) => n);
  if (missing.length) {
    const msg = `Slurm test cluster: ${missing.join(", ")} not installed ` +
      `(apt-get install slurmctld slurmd slurm-client munge)`;
    if (IN_CI) throw new Error(`${msg}; CI requires them`);
    console.warn(`SKIP: ${msg}`);
    return undefined;
  }
  const bin = (n: string) => programs.get(n)!;
  const t = await Deno.makeTempDir({ prefix: "slurm-cluster-" });
  for (const d of ["munge", "state", "spool", "log"]) await Deno.mkdir(join(t, d));
  // munged refuses a socket whose folders others cannot enter (makeTempDir gives 700).
  await Deno.chmod(t, 0o755);
  await Deno.chmod(join(t, "munge"), 0o755);
  const key = join(t, "munge", "munge.key");
  await Deno.writeFile(key, crypto.getRandomValues(new Uint8Array(1024)), { mode: 0o400 });
  const conf = join(t, "slurm.conf");
  await Deno.writeTextFile(conf, slurmConf(t, ...freePorts(2) as [number, number]));
  const env = { SLURM_CONF: conf };
  const logDir = join(t, "log");
  const daemons: Daemon[] = [];
  const previousConf = Deno.env.get("SLURM_CONF");
  try {
    const m = join(t, "munge");
    daemons.push(
      new Daemon("munged", bin("munged"), [
        "-F",
        `--socket=${m}/munge.socket.2`,
        `--key-file=${key}`,
        `--pid-file=${m}/munged.pid`,
        `--seed-file=${m}/munged.seed`,
      ], env),
    );
    const socketUp = () => {
      try {
        return Deno.statSync(`${m}/munge.socket.2`).isSocket === true;
      } catch {
        return false;
      }
    };
    await until("munged socket", socketUp, 10_000, daemons, logDir);
    daemons.push(new Daemon("slurmctld", bin("slurmctld"), ["-D"], env));
    const ping = async () => / is UP/.test((await run(bin("scontrol"), ["ping"], env)).out);
    await until("slurmctld up", ping, 20_000, daemons, logDir);
    daemons.push(new Daemon("slurmd", bin("slurmd"), ["-D", "-N", "localhost"], env));
    const idle = async () =>
      (await run(bin("sinfo"), ["-h", "-n", "localhost", "-o", "%T"], env)).out === "idle";
    await until("node idle", idle, 30_000, daemons, logDir);
    Deno.env.set("SLURM_CONF", conf);
    return await fn({ dir: t, conf, env });
  } finally {
    if (previousConf === undefined) Deno.env.delete("SLURM_CONF");
    else Deno.env.set("SLURM_CONF", previousConf);
    // Stopping slurmd does not end running jobs: cancel them and let their steps finish first.
    if (daemons.length === 3 && !daemons.some((d) => d.exited)) {
      const active = async () =>
        (await run(bin("squeue"), ["-h", "-o", "%i"], env)).out.split("\n").filter((l) => l);
      const jobs = await active();
      if (jobs.length) {
        await run(bin("scancel"), jobs.map((j) => j.split("_")[0]), env);
        const deadline = Date.now() + 15_000;
        while ((await active()).length && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    }
    for (const d of [...daemons].reverse()) await d.stop();
    await Deno.remove(t, { recursive: true }).catch(() => {});
  }
}
