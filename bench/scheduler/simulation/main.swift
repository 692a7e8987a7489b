// The scheduler simulation as a benchmark (issue #6 acceptance 2): CPU time of `SchedulerSimulation` over a virtual
// day. Compiled by bench/scheduler/simulation.sh together with Sources/ReelCore (one optimised module, as in a
// release build); not part of the package.
import Glibc

func processCPU() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let args = CommandLine.arguments
let jobs = args.count > 1 ? Int(args[1]) ?? 10_000 : 10_000
let repeats = args.count > 2 ? Int(args[2]) ?? 3 : 3
let perTask = args.contains("--per-task")
var limits = SchedulerLimits()
limits.polling.useTaskList = !perTask
var times: [Double] = []
var last: SchedulerSimulation.Report?
for _ in 0..<repeats {
    let t0 = processCPU()
    var sim = SchedulerSimulation(jobCount: jobs, limits: limits)
    let r = sim.run()
    times.append(processCPU() - t0)
    last = r
}
let r = last!
let n = Double(max(1, r.completed))
print("scheduler simulation, \(jobs) jobs, \(perTask ? "per-task polling" : "task-list polling"), \(repeats) runs")
print("  CPU s per run: " + times.map { String(Int(($0 * 1000).rounded())) + " ms" }.joined(separator: ", ")
      + "; best \(Int((times.min()! * 1000).rounded())) ms (target < 2000 ms)")
print("  completed \(r.completed), events \(r.events), makespan \(Int(r.makespan)) s virtual")
print("  slots held while queued \(r.slotUtilisation), rendering while queued \(r.renderingUtilisation)")
print("  queries/job \(Double(r.queries) / n) (lists \(Double(r.listQueries) / n)), SDK polls/job \(Double(r.sdkPolls) / n)")
print("  max creates/s \(r.maxCreatesPerSecond), max queries/s \(r.maxQueriesPerSecond), max provider active \(r.maxProviderActive), max slots held \(r.maxHolders)")
