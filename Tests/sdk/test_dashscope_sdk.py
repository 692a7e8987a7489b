#!/usr/bin/env python3
"""Drives the official `dashscope` Python SDK against a freshly started reel-sandbox.

Usage: test_dashscope_sdk.py --sandbox PATH/TO/reel-sandbox
Each case must end SUCCEEDED, and the downloaded video must probe (ffprobe) as H.264 at the requested size
and duration. Prints one line per case and a final line "N passed, N failed"; exits 1 on any failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request


def start_sandbox(binary, data_dir):
    proc = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--time-scale", "100", "--run-time", "10..20",
         "--data", data_dir, "--seed", "1"],
        stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"reel-sandbox did not start: {line!r}")
    return proc, line[len("listening on "):]


def probe(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_entries",
         "format=duration:stream=codec_type,codec_name,width,height", path],
        check=True, capture_output=True, text=True).stdout
    data = json.loads(out)
    video = next(s for s in data["streams"] if s.get("codec_type") == "video")
    return video["codec_name"], video["width"], video["height"], float(data["format"]["duration"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sandbox", required=True)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="reel-sdk-test-")
    proc, url = start_sandbox(args.sandbox, os.path.join(work, "data"))
    # The SDK reads these at import time.
    os.environ["DASHSCOPE_HTTP_BASE_URL"] = url + "/api/v1"
    os.environ["DASHSCOPE_API_KEY"] = "sk-sdk-test"
    from dashscope import VideoSynthesis  # noqa: E402

    png = os.path.join(work, "character1.png")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=320x320:rate=1", "-frames:v", "1", png], check=True)

    cases = [
        ("http reference", ["https://example.com/character1.png"], "1280*720", 3),
        ("local file:// reference (upload)", ["file://" + png], "1280*720", 2),
    ]
    passed = failed = 0
    try:
        for name, refs, size, duration in cases:
            try:
                rsp = VideoSynthesis.call(model="wan2.6-r2v", prompt="character1 walks through a sunny park",
                                          reference_urls=refs, size=size, duration=duration)
                assert rsp.status_code == 200, f"HTTP {rsp.status_code} {rsp.code} {rsp.message}"
                assert rsp.output.task_status == "SUCCEEDED", f"task_status {rsp.output.task_status}"
                video = os.path.join(work, f"case{passed + failed}.mp4")
                urllib.request.urlretrieve(rsp.output.video_url, video)
                codec, width, height, seconds = probe(video)
                want_w, want_h = (int(x) for x in size.split("*"))
                assert codec == "h264", f"codec {codec}"
                assert (width, height) == (want_w, want_h), f"size {width}x{height}"
                assert abs(seconds - duration) <= 0.1, f"duration {seconds}"
                print(f"ok   {name}: {rsp.output.task_id} {codec} {width}x{height} {seconds:.3f}s")
                passed += 1
            except Exception as e:  # one failing case must not hide the others
                print(f"FAIL {name}: {e!r}")
                failed += 1
        # The upload case must have sent the OSS resolve header with an oss:// reference.
        journal = json.load(urllib.request.urlopen(url + "/__sandbox/requests"))["requests"]
        creates = [r for r in journal if r["path"].endswith("/video-synthesis")]
        if [r.get("oss_header") for r in creates] == [False, True] and \
                all(r.get("reference_field") == "reference_urls" for r in creates):
            print("ok   journal: reference_urls on both creates, OSS header on the upload case")
            passed += 1
        else:
            print(f"FAIL journal: {creates}")
            failed += 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
