"""After purge.yml on a real systemd host: the Restart=always unit is gone and stays down."""
import time


def test_unit_removed_and_process_stays_down(host):
    assert host.run("systemctl cat open-autoglm.service").rc != 0
    assert not host.file("/etc/systemd/system/open-autoglm.service").exists
    assert not host.file("/etc/systemd/system/multi-user.target.wants/open-autoglm.service").exists
    time.sleep(3)  # longer than RestartSec: a surviving unit would have respawned it
    assert "/usr/local/bin/open-autoglm" not in host.check_output("ps -eo args=")


def test_unrelated_service_untouched(host):
    assert host.service("labeler.service").is_running
    assert host.service("labeler.service").is_enabled


def test_files_and_model_gone_other_model_kept(host):
    assert not host.file("/root/.cache/open-autoglm").exists
    assert not host.file("/root/.config/open-autoglm").exists
    assert not host.file("/srv/hf/hub/models--zai-org--AutoGLM-Phone-9B").exists
    assert host.file("/srv/hf/hub/models--sentence-x--minilm-l6/refs/main").exists
    assert host.file("/srv/datasets/corpus.txt").size == 200 * 1024
