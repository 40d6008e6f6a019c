"""Read and update data/manifest.json (the demo world's record: corpus hash, model settings, accuracy)."""
import json
import os

MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "manifest.json")


def read_manifest():
    if not os.path.exists(MANIFEST):
        return {}
    with open(MANIFEST) as f:
        return json.load(f)


def update_manifest(section, value):
    """Replace one top-level section, keeping the rest; atomic write."""
    m = read_manifest()
    m[section] = value
    tmp = f"{MANIFEST}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(m, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, MANIFEST)
