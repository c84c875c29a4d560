"""Seed a fake Open-AutoGLM installation under one throwaway home (for make demo)."""
import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, ".build", "collections"))

from ansible_collections.residue.purge.tests.unit.support import hfgen  # noqa: E402


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main(home):
    write(os.path.join(home, ".cache/open-autoglm/screenshots/step-001.png"), os.urandom(180000))
    write(os.path.join(home, ".cache/open-autoglm/agent.log"), b"INFO started\n" * 2000)
    write(os.path.join(home, ".config/open-autoglm/config.yaml"), b"model: zai-org/AutoGLM-Phone-9B\n")
    write(os.path.join(home, ".cache/huggingface/token"), b"hf_not_a_real_token")
    hub = os.path.join(home, ".cache/huggingface/hub")
    hfgen.add_repo(hub, "zai-org/AutoGLM-Phone-9B", revisions=2, files_per_revision=12, max_file_size=65536)
    hfgen.add_repo(hub, "BAAI/bge-small-en-v1.5", revisions=1, files_per_revision=6)
    write(os.path.join(home, ".cache/pip/http-v2/a/b/c"), os.urandom(40000))


if __name__ == "__main__":
    main(sys.argv[1])
