import os

from simulations.process_memory import PeakMemory, command_text, process_kind


def test_process_kind_names_flower_and_ray_processes():
    venv = "/p/.venv/bin"
    assert process_kind(f"{venv}/python {venv}/flwr-simulation --serverappio-api-address x") == (
        "simulation"
    )
    assert process_kind(f"{venv}/python {venv}/flower-superlink --simulation") == "superlink"
    assert process_kind("ray::ClientAppActor.run") == "ray_worker"
    assert process_kind("ray::IDLE") == "ray_worker"
    assert process_kind("ray::DashboardAgent") == "ray_services"
    assert process_kind("/p/site-packages/ray/core/src/ray/gcs/gcs_server --x") == "ray_services"
    assert process_kind(f"{venv}/python /p/site-packages/ray/dashboard/dashboard.py") == (
        "ray_services"
    )
    assert process_kind(f"{venv}/python {venv}/flwr run . sim --stream") == "flwr_cli"
    assert process_kind("/bin/bash -c sleep") == "other"
    assert process_kind("") == "other"


def test_peak_memory_keeps_the_peak_of_each_kind_beside_the_total():
    with PeakMemory(lambda: {os.getpid()}, interval=0.01) as memory:
        pass
    kind = process_kind(command_text(os.getpid()))
    assert memory.peak_rss > 0
    assert memory.peak_rss_by_kind == {kind: memory.peak_rss}
    assert command_text(2**22 + 1) == ""  # above Linux's pid_max: no such process
