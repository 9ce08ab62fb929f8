"""Training curves: one panel per logged term; train writes loss.png, and TensorBoard events
when asked."""


import matplotlib.pyplot as plt
import pytest

from condflow.tasks import load_config
from condflow.train import train
from condflow.viz.curves import read_training_log, training_log_figure

LOG = "step,lr,seconds,nll,mode,loss\n1,0.1,0.5,3.0,0.9,12.0\n2,0.1,1.0,1.0,0.5,6.0\n" \
      "3,0.05,1.5,-2.0,0.01,0.1\n"


def test_one_panel_per_term_loss_first_lr_last_log_scale_over_decades(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(LOG)
    log = read_training_log(path)
    assert log["loss"].tolist() == [12.0, 6.0, 0.1]
    fig = training_log_figure(log)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["loss", "nll", "mode", "learning rate"]
    assert all(ax.get_xlabel() == "step" for ax in shown)
    scales = {ax.get_title(): ax.get_yscale() for ax in shown}
    # loss spans 120x (log); nll has negative values (linear); mode spans 90x (linear)
    assert scales == {"loss": "log", "nll": "linear", "mode": "linear",
                      "learning rate": "linear"}
    assert list(shown[0].get_lines()[0].get_xdata()) == [1, 2, 3]
    plt.close(fig)


def test_a_log_without_rows_is_refused_by_name(tmp_path):
    (tmp_path / "log.csv").write_text("")
    with pytest.raises(ValueError, match="log.csv: expected a training log"):
        read_training_log(tmp_path / "log.csv")


def test_training_writes_loss_png_and_tensorboard_events_when_asked(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    raw = {"task": "lifting", "output_dir": str(tmp_path / "run"),
           "data": {"train_size": 64, "test_size": 16},
           "model": {"lifter_hidden": 16, "lifter_blocks": 1, "flow_blocks": 1,
                     "flow_hidden": 8, "flow_residual_blocks": 1},
           "train": {"steps": 4, "batch_size": 16, "log_every": 2, "threads": 1,
                     "tensorboard": True}}
    train(load_config(raw), progress=False)
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/nll", "train/lr"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4]
    raw["output_dir"] = str(tmp_path / "plain")
    raw["train"]["tensorboard"] = False
    train(load_config(raw), progress=False)
    assert not (tmp_path / "plain" / "tensorboard").exists()
