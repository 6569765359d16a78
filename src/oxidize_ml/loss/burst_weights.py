"""Fitted parameters of the burst-aware loss predictor: GENERATED, do not edit.

Regenerate with ``python -m oxidize_ml.training.loss_burst --out src/oxidize_ml/loss/burst_weights.py``
(`oxidize_ml.training.loss_burst`: training split only). Provenance:

- rows: 334580
- positive_rate: 0.1077948472712057
- runs: 142
- traces: ['TMobile-LTE-short.down', 'TMobile-LTE-short.up', 'Verizon-EVDO-driving.down', 'Verizon-EVDO-driving.up']
- train_pr_auc: 0.4840786294671394
- train_pr_auc_ewma: 0.2513912651683554
- ewma_overhead: 0.060475732092091235
"""

from __future__ import annotations

FEATURE_VERSION = 3

WEIGHTS: tuple[float, ...] = (
    -4.390937824285824,  # bias
    0.6741468724526923,  # tsl<0.005s
    0.5001488490618727,  # tsl<0.015s
    0.4825214304041371,  # tsl<0.035s
    0.40204585023589945,  # tsl<0.075s
    0.01560356984298596,  # tsl<0.15s
    -0.12255134613703811,  # tsl<0.3s
    -0.21136470472838345,  # tsl<0.6s
    -0.49124699749761835,  # tsl<1.2s
    -0.4458560641586305,  # tsl<2.5s
    -0.36371145809614025,  # tsl<5s
    -0.4397360013807444,  # tsl>=5s
    -0.45930429463227795,  # phase<0.25
    -0.1487225013520711,  # phase<0.5
    0.007127443708275801,  # phase<0.75
    0.047904920786255085,  # phase<0.9
    0.0781154941296311,  # phase<1.1
    0.10386759788127779,  # phase<1.5
    0.06840343195290718,  # phase<2
    0.09317856131734716,  # phase<3
    -0.19582465535827917,  # phase>=3
    0.4052540015659622,  # phase_none
    0.8769769364942502,  # sqrt_fast_loss
    0.73672584478437,  # sqrt_slow_loss
    0.8021511586005432,  # log_episodes
    -0.5526528920557526,  # burst_severity
    0.02712009063234256,  # queue_vs_loss_queue
    0.5025519487873676,  # no_loss_yet
    0.40162364895210845,  # rtt_gradient
    0.09513485884952558,  # delivery_rate_trend
    -0.2423411200313402,  # jitter_ratio
    -0.46499651944240206,  # queue_share
    0.39644097762440955,  # queue_vs_max
    0.4689285199321428,  # sqrt_loss_last_rtt
    0.43214456255598444,  # sqrt_loss_prev_rtt
    0.9040489268615379,  # inflight_vs_loss
    0.20467579744235825,  # cwnd_vs_loss
    0.2899710911211364,  # log_bdp_ratio
    0.3458605782986058,  # cwnd_growth
    0.5515737904385462,  # long_rtt_x_tsl<0.005s
    0.054256795276738455,  # long_rtt_x_tsl<0.015s
    -0.0346973066366451,  # long_rtt_x_tsl<0.035s
    -0.14780030920319154,  # long_rtt_x_tsl<0.075s
    -0.03737782418724463,  # long_rtt_x_tsl<0.15s
    0.048057525766449956,  # long_rtt_x_tsl<0.3s
    -0.08690918361604826,  # long_rtt_x_tsl<0.6s
    -0.07492878400439254,  # long_rtt_x_tsl<1.2s
    -0.058888154533059796,  # long_rtt_x_tsl<2.5s
    -0.035819349960094476,  # long_rtt_x_tsl<5s
    -0.28479901275166924,  # long_rtt_x_tsl>=5s
    -0.10733181341061468,  # long_rtt
    0.3691250547671513,  # long_rtt_x_sqrt_fast_loss
    0.32442631790122994,  # long_rtt_x_queue_vs_loss_queue
    -0.3356678952015335,  # long_rtt_x_inflight_vs_loss
)

SEVERITY: tuple[float, ...] = (
    0.008000000000000007,
    0.010810810810810523,
    0.016666666666666607,
    0.019999999999999928,
    0.024333333333333228,
    0.02857142857142856,
    0.03333333333333357,
    0.04000000000000057,
    0.05,
    0.05,
    0.060000000000000143,
    0.06666666666666643,
    0.06666666666666679,
    0.06666666666666714,
    0.08000000000000007,
    0.1,
    0.1,
    0.1,
    0.1,
    0.10714285714285694,
    0.125,
    0.1333333333333334,
    0.14545454545454675,
    0.15999999999999998,
    0.175,
    0.2,
    0.2,
    0.2333333333333333,
    0.28333333333333427,
    0.3152885837556151,
    0.40666666666666734,
    0.5200000000000001,
)

REPAIR_PRICE = 0.0044317571736151706
