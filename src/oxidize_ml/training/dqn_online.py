"""The online DQN learner's training loop (torch), injected into the runtime policy.

`oxidize_ml.congestion.dqn.DqnCwndPolicy` runs inference in numpy and never
imports torch or training code; learning on live traffic is opt-in and needs
this loop::

    from oxidize_ml.congestion.dqn import DqnCwndPolicy, OnlineConfig
    from oxidize_ml.training.dqn_online import torch_online_trainer

    policy = DqnCwndPolicy(model, online=OnlineConfig(), trainer=torch_online_trainer)

The loop runs on the learner's thread: Double-DQN updates (`dqn_update`, the
same update offline training uses) on a torch copy of the network, the target
network synced every ``target_sync_updates``, new weights published every
``publish_every_updates`` by one reference store, so a decision never waits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oxidize_ml.congestion.dqn import OnlineLearner


def torch_online_trainer(learner: OnlineLearner) -> None:
    """Train until ``learner.wait`` says stop (see the module docstring)."""
    import torch

    from oxidize_ml.training.dqn import dqn_update, torch_from_weights

    cfg = learner.config
    torch.set_num_threads(cfg.torch_threads)
    online = torch_from_weights(learner.weights)
    target = torch_from_weights(learner.weights)
    opt = torch.optim.Adam(online.parameters(), lr=cfg.learning_rate)
    while not learner.wait(cfg.train_interval_s):
        if len(learner.replay) < cfg.min_replay:
            continue
        for _ in range(cfg.updates_per_wake):
            if learner.stopping:
                return
            batch = learner.replay.sample(cfg.batch_size)
            learner.last_loss = dqn_update(
                online,
                target,
                opt,
                batch,
                gamma=cfg.gamma,
                huber_delta=cfg.huber_delta,
                max_grad_norm=cfg.max_grad_norm,
            )
            learner.updates += 1
            if learner.updates % cfg.target_sync_updates == 0:
                target.load_state_dict(online.state_dict())
            if learner.updates % cfg.publish_every_updates == 0:
                learner.publish(
                    {k: v.detach().cpu().numpy().copy() for k, v in online.state_dict().items()}
                )
