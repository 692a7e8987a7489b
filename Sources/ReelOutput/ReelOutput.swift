// ReelOutput: delivery into the output tree.
//
// OutputTree (paths from validated ids only) · QC (probe vs request) · Delivery (publish a download, sidecars,
// batch.json + SHA256SUMS, all atomic and fsynced) · Sidecar / BatchManifest (the JSON records) ·
// BatchHook / Webhook (batch-end notifications).
