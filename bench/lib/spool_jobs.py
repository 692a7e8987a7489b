"""Drops TOTAL queued-job manifests into a spool: 10,000 flash 720p jobs per manifest, written in tmp/ and renamed
into incoming/ as writers must. Used by the control-API and memory benchmarks.

Usage: python3 bench/lib/spool_jobs.py SPOOL TOTAL
"""
import json
import os
import sys

spool, total = sys.argv[1], int(sys.argv[2])
per = 10_000
for f in range((total + per - 1) // per):
    n = min(per, total - f * per)
    jobs = [{"id": f"j{f * per + i:06d}", "prompt": "character1 waves",
             "references": [{"url": "https://cdn.example.com/a.png"}]} for i in range(n)]
    doc = {"manifest_version": 1, "batch": f"bench-{f:02d}",
           "defaults": {"model": "wan2.6-r2v-flash", "resolution": "720p", "aspect_ratio": "16:9", "duration_s": 2},
           "jobs": jobs}
    tmp = os.path.join(spool, "tmp", f"bench-{f:02d}.json")
    with open(tmp, "w") as fh:
        json.dump(doc, fh)
    os.rename(tmp, os.path.join(spool, "incoming", f"bench-{f:02d}.json"))
