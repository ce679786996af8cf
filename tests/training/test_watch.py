"""vistoolbox.watch: its statistics against a direct computation on a tiny model (the test composes the
layers itself and reads the gradients after backward), hooks, the untouched training, the log."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from vistoolbox import VisUsageError, open_run, read_training_log, watch
from vistoolbox.rundir import TrainingLogWriter, training_log_path


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 5, 3)
        self.fc = nn.Linear(5 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv1(x)))
        return self.fc(torch.relu(self.conv2(x)).flatten(1))


def tiny() -> Tiny:
    torch.manual_seed(0)
    model = Tiny()
    with torch.no_grad():
        model.conv2.bias[1] = -1e3  # unit 1 of conv2 is never positive: dead
    return model


def batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(6, 3, 8, 8, generator=gen), torch.randint(0, 3, (6,), generator=gen)) for _ in range(count)]


PROBE = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(2))


def reference_outputs(model: Tiny) -> dict[str, torch.Tensor]:
    """The watched layers' outputs for the probe, composed by hand in eval mode."""
    model.eval()
    with torch.no_grad():
        c1 = model.conv1(PROBE)
        bn = (c1 - model.bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(model.bn.running_var.view(1, -1, 1, 1)
                                                                         + model.bn.eps)
        bn = bn * model.bn.weight.view(1, -1, 1, 1) + model.bn.bias.view(1, -1, 1, 1)
        c2 = model.conv2(torch.relu(bn))
        fc = model.fc(torch.relu(c2).flatten(1))
    model.train()
    return {"conv1": c1, "conv2": c2, "fc": fc}


def train_steps(model: Tiny, steps: int, watcher=None, on_record=None, every: int = 2) -> list[float]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for step, (x, y) in enumerate(batches(steps), 1):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if on_record is not None and step % every == 0:
            on_record(step, model)
        if watcher is not None:
            watcher.step(loss=loss, metrics={"double": 2 * float(loss.detach())})
    return losses


def test_statistics_equal_a_direct_computation(tmp_path):
    model = tiny()
    expected = {}

    def on_record(step: int, m: Tiny) -> None:  # what the test computes itself, at the same moment
        outs = reference_outputs(m)
        entry = {}
        for name, out in outs.items():
            per_unit = out.transpose(0, 1).reshape(out.shape[1], -1)
            image_max = out.flatten(2).amax(2) if out.ndim > 2 else out
            layer = getattr(m, name)
            dead = [u for u in range(out.shape[1]) if bool((per_unit[u] <= 0).all())]
            entry[name] = {"act_sum": per_unit.sum(1), "act_mean": per_unit.mean(1), "max_mean": image_max.mean(0),
                           "weight_norm": torch.stack([layer.weight[u].norm() for u in range(out.shape[1])]),
                           "grad_norm": torch.stack([layer.weight.grad[u].norm() for u in range(out.shape[1])]),
                           "dead_units": dead, "dead_share": len(dead) / out.shape[1]}
        expected[step] = entry

    with watch(model, tmp_path, every=2, probe=PROBE, layers=["conv1", "conv2", "fc"]) as w:
        losses = train_steps(model, 6, w, on_record)
    stats = read_training_log(tmp_path).of("stats")
    assert [r["step"] for r in stats] == [2, 4, 6] == sorted(expected)
    for record in stats:
        assert record["loss"] == pytest.approx(losses[record["step"] - 1], rel=1e-6)
        assert record["metrics"]["double"] == pytest.approx(2 * losses[record["step"] - 1], rel=1e-6)
        for name, want in expected[record["step"]].items():
            got = record["layers"][name]
            for key in ("act_sum", "act_mean", "max_mean", "weight_norm", "grad_norm"):
                assert torch.allclose(torch.tensor(got[key]), want[key].float(), rtol=1e-4, atol=1e-5), (name, key)
            assert got["dead_units"] == want["dead_units"] and got["dead_share"] == want["dead_share"]
    assert stats[-1]["layers"]["conv2"]["dead_units"] == [1]


def test_the_watcher_leaves_training_untouched_and_removes_its_hooks(tmp_path):
    plain = tiny()
    train_steps(plain, 6)
    watched = tiny()
    hooks = lambda m: [(n, len(x._forward_hooks), len(x._forward_pre_hooks), len(x._backward_hooks))  # noqa: E731
                       for n, x in m.named_modules()]
    before = hooks(watched)
    with watch(watched, tmp_path, every=1, probe=PROBE, topk=2) as w:
        train_steps(watched, 6, w)
        assert hooks(watched) == before  # between records no hook stays on the model
        w.checkpoint("end")
    assert hooks(watched) == before
    assert watched.training and watched.bn.training
    for (name, a), b in zip(plain.state_dict().items(), watched.state_dict().values()):
        assert torch.equal(a, b), name  # same weights and batch-norm statistics, bit for bit


def test_topk_are_the_probe_images_that_excite_each_unit_most(tmp_path):
    model = tiny()
    with watch(model, tmp_path, every=10, probe=PROBE, topk=3, layers=["conv1", "fc"]) as w:
        w.checkpoint("start")
    outs = reference_outputs(model)
    record = read_training_log(tmp_path).of("topk")[0]
    assert record["label"] == "start" and record["step"] == 0
    for name in ("conv1", "fc"):
        out = outs[name]
        scores = out.flatten(2).amax(2) if out.ndim > 2 else out
        for unit in range(scores.shape[1]):
            order = sorted(range(len(PROBE)), key=lambda i: -float(scores[i, unit]))[:3]
            assert record["layers"][name]["index"][unit] == order
            assert record["layers"][name]["value"][unit] == pytest.approx([float(scores[i, unit]) for i in order],
                                                                           rel=1e-5)


def test_the_run_opens_and_says_where_its_log_is(tmp_path):
    model = tiny()
    images = PROBE.sigmoid()
    with watch(model, tmp_path, every=1, probe=PROBE, probe_images=images, manifest={"model": "tiny", "seed": 3}):
        pass
    run = open_run(tmp_path)
    assert run.manifest["status"] == "complete" and run.manifest["model"] == "tiny" and run.layers == []
    assert run.manifest["training"]["log"] == "training/log.jsonl"
    assert run.manifest["training"]["layers"]["conv2"] == {"units": 5, "type": "Conv2d"}
    assert sorted(p.name for p in (tmp_path / "training" / "probe").iterdir()) == [f"img_{i:04d}.png" for i in range(5)]
    with pytest.raises(RuntimeError), watch(model, tmp_path / "b", every=1):
        raise RuntimeError("training failed")
    assert open_run(tmp_path / "b").manifest["status"] == "interrupted"


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_record(tmp_path):
    model = tiny()
    with watch(model, tmp_path, every=1, probe=PROBE) as w:
        train_steps(model, 3, w)
    whole = read_training_log(tmp_path).records
    path = training_log_path(tmp_path)
    with open(path, "ab") as fh:
        fh.write(b'{"kind":"stats","step":4,"loss":0.5,"lay')  # a write that a kill interrupted
    assert read_training_log(tmp_path).records == whole
    with TrainingLogWriter(tmp_path) as log:
        log.append({"kind": "epoch", "step": 3, "epoch": 1})
    assert read_training_log(tmp_path).records == whole + [{"kind": "epoch", "step": 3, "epoch": 1}]
    lines = path.read_bytes().split(b"\n")
    assert all(json.loads(line) for line in lines[:-1]) and lines[-1] == b""
    path.write_bytes(b"not json\n" + path.read_bytes())
    with pytest.raises(RuntimeError, match="line 1 is not a training record"):
        read_training_log(tmp_path)


def test_a_resumed_session_supersedes_what_the_interrupted_one_logged_past_its_start(tmp_path):
    with TrainingLogWriter(tmp_path) as log:
        for step in (2, 4, 6):
            log.append({"kind": "stats", "step": step, "loss": float(step)})
        log.append({"kind": "start", "step": 4})  # resumed from the checkpoint at step 4
        log.append({"kind": "stats", "step": 6, "loss": 60.0})
    history = read_training_log(tmp_path)
    steps, losses = history.scalar("loss")
    assert steps.tolist() == [2, 4, 6] and losses.tolist() == [2.0, 4.0, 60.0]


def test_non_finite_values_are_written_as_null(tmp_path):
    with TrainingLogWriter(tmp_path) as log:
        log.append({"kind": "stats", "step": 1, "loss": float("nan"), "layers": {"a": {"act_sum": [float("inf"), 1.0]}}})
    record = read_training_log(tmp_path).records[0]
    assert record["loss"] is None and record["layers"]["a"]["act_sum"] == [None, 1.0]
    with pytest.raises(ValueError, match="unknown training record kind"), TrainingLogWriter(tmp_path) as log:
        log.append({"kind": "nonsense", "step": 1})


def test_only_rank_zero_writes(tmp_path, monkeypatch):
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    model = tiny()
    with watch(model, tmp_path / "rank1", every=1, probe=PROBE) as w:
        train_steps(model, 2, w)
        w.checkpoint()
    assert not (tmp_path / "rank1").exists()
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    with watch(model, tmp_path / "rank0", every=1, probe=PROBE) as w:
        train_steps(model, 2, w)
    assert len(read_training_log(tmp_path / "rank0").of("stats")) == 2


def test_bad_arguments_are_usage_errors(tmp_path):
    model = tiny()
    with pytest.raises(VisUsageError, match="unknown layer 'conv9'"):
        watch(model, tmp_path, layers=["conv9"])
    with pytest.raises(VisUsageError, match="every must be at least 1"):
        watch(model, tmp_path, every=0)
    with pytest.raises(VisUsageError, match="probe must be a batch"):
        watch(model, tmp_path, probe=torch.zeros(0, 3, 8, 8))
    with pytest.raises(VisUsageError, match="inside its with block"):
        watch(model, tmp_path, probe=PROBE).checkpoint()
