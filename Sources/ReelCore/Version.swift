/// Reel's version: what `reeld --version` and `reelctl --version` print, the `User-Agent` of the daemon's and
/// `reelctl`'s requests and of webhooks, `version` in `/v1/status`, and `reel_version` in sidecars and batch
/// manifests.
public enum ReelVersion {
    public static let current = "0.1.0"
}
