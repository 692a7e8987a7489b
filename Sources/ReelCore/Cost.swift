/// Money: what a job will cost (intake, `reelctl estimate`) and what it did cost (sidecar, batch manifest).
public enum Cost {
    /// Estimated USD of `spec`: its `estimatedBilledSeconds` (output plus capped input-video seconds, reference
    /// §1.6) at the table's rate for its model and resolution; nil when the table has no such rate.
    public static func estimate(spec: JobSpec, pricing: PricingTable) -> Double? {
        estimate(model: spec.model, resolution: spec.resolution, billedSeconds: spec.estimatedBilledSeconds,
                 pricing: pricing)
    }

    /// The estimate from a job's model, resolution and estimated billed seconds (a listing's columns).
    public static func estimate(model: RenderModel, resolution: Resolution, billedSeconds: Double,
                                pricing: PricingTable) -> Double? {
        pricing.cost(model, resolution, billedSeconds: billedSeconds).map(rounded)
    }

    /// Actual USD from the provider's `usage`: `usage.duration` (billed seconds) when given, else
    /// `output_video_duration + input_video_duration`; nil when usage has neither or the table has no rate.
    public static func actual(usage: TaskUsage, spec: JobSpec, pricing: PricingTable) -> Double? {
        guard let seconds = billedSeconds(usage) else { return nil }
        return pricing.cost(spec.model, spec.resolution, billedSeconds: seconds).map(rounded)
    }

    /// What a SUCCEEDED task is billed (reference §1.6: every SUCCEEDED task is billed, a failed one is not),
    /// recorded on the job the moment the success is seen, whether or not the file is ever delivered: the actual
    /// cost from `usage`, or the estimate when the provider's `usage` says nothing usable. nil only when the
    /// table has no rate for the job's model and resolution.
    public static func billed(usage: TaskUsage?, spec: JobSpec, pricing: PricingTable) -> Double? {
        usage.flatMap { actual(usage: $0, spec: spec, pricing: pricing) } ?? estimate(spec: spec, pricing: pricing)
    }

    /// Billed seconds according to `usage`, nil when it says nothing usable.
    public static func billedSeconds(_ usage: TaskUsage) -> Double? {
        if let d = usage.duration { return d }
        guard let output = usage.outputVideoDuration else { return nil }
        return output + (usage.inputVideoDuration ?? 0)
    }

    /// Money as Reel shows and stores it: rounded to a hundredth of a cent (4 decimals, enough for per-second
    /// prices), so JSON shows `0.95` and not `0.9500000000000001`. USD amounts in the API, the files and the
    /// store go through this one function.
    public static func rounded(_ usd: Double) -> Double { (usd * 10_000).rounded() / 10_000 }
}
