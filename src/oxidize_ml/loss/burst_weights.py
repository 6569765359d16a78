"""Fitted parameters of the burst-aware loss predictor: GENERATED, do not edit.

Regenerate with ``python -m oxidize_ml.training.loss_burst --out src/oxidize_ml/loss/burst_weights.py``
(`oxidize_ml.training.loss_burst`: training split only). Provenance:

- rows: 175380
- positive_rate: 0.07844109932717527
- runs: 62
- traces: ['TMobile-LTE-short.down', 'TMobile-LTE-short.up', 'Verizon-EVDO-driving.down', 'Verizon-EVDO-driving.up']
- train_pr_auc: 0.37021409599542265
- train_pr_auc_ewma: 0.16149984343660187
- ewma_overhead: 0.05105053759193658
"""

from __future__ import annotations

FEATURE_VERSION = 2

WEIGHTS: tuple[float, ...] = (
    -5.250168804864237,  # bias
    0.4998795821103564,  # tsl<0.005s
    0.38961367888258086,  # tsl<0.015s
    0.44243355973529924,  # tsl<0.035s
    0.3009418350646062,  # tsl<0.075s
    0.04075297247384015,  # tsl<0.15s
    -0.06237732337702128,  # tsl<0.3s
    -0.08723294542385042,  # tsl<0.6s
    -0.5016218515445832,  # tsl<1.2s
    -0.45608655019943656,  # tsl<2.5s
    -0.28120004406912863,  # tsl<5s
    -0.2851029136545959,  # tsl>=5s
    -0.5542173307430631,  # phase<0.25
    -0.23916301478495533,  # phase<0.5
    -0.06798680389923067,  # phase<0.75
    0.017910032552827186,  # phase<0.9
    0.09910016511246801,  # phase<1.1
    0.12927300367110128,  # phase<1.5
    0.1559991166247358,  # phase<2
    0.08944682211250977,  # phase<3
    -0.17962638794057556,  # phase>=3
    0.5492643972922553,  # phase_none
    0.5661864841586778,  # sqrt_fast_loss
    0.4987030215782783,  # sqrt_slow_loss
    0.8612847448019497,  # log_episodes
    -0.03643674398068823,  # burst_severity
    0.03381788244167155,  # queue_vs_loss_queue
    0.7242189510304531,  # no_loss_yet
    0.5003702002103659,  # rtt_gradient
    0.1339109343054506,  # delivery_rate_trend
    -0.21490975878267918,  # jitter_ratio
    -0.7893877816950283,  # queue_share
    0.5495757435743969,  # queue_vs_max
    0.682600698377143,  # sqrt_loss_last_rtt
    0.6386328528902527,  # sqrt_loss_prev_rtt
    1.191027539901368,  # inflight_vs_loss
    0.3975458876499847,  # cwnd_vs_loss
    0.2958701580405363,  # log_bdp_ratio
    0.14778033664567186,  # cwnd_growth
    0.2949542089202686,  # long_rtt_x_tsl<0.005s
    0.05005508323316072,  # long_rtt_x_tsl<0.015s
    -0.018963415579106253,  # long_rtt_x_tsl<0.035s
    0.05818067285414075,  # long_rtt_x_tsl<0.075s
    0.0070207917701238035,  # long_rtt_x_tsl<0.15s
    0.16726888648691496,  # long_rtt_x_tsl<0.3s
    -0.17235875122193334,  # long_rtt_x_tsl<0.6s
    -0.19334784553909246,  # long_rtt_x_tsl<1.2s
    0.05375325629083204,  # long_rtt_x_tsl<2.5s
    -0.12170352498347921,  # long_rtt_x_tsl<5s
    -0.23490257560660585,  # long_rtt_x_tsl>=5s
    -0.11004321337478049,  # long_rtt
    0.16439341994564147,  # long_rtt_x_sqrt_fast_loss
    0.40562511388414535,  # long_rtt_x_queue_vs_loss_queue
    -0.4193119302113273,  # long_rtt_x_inflight_vs_loss
)

SEVERITY: tuple[float, ...] = (
    0.014285714285714235,
    0.019999999999999928,
    0.022222222222222143,
    0.033333333333333215,
    0.04000000000000057,
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
    0.1,
    0.1,
    0.1,
    0.11999999999999886,
    0.13333333333333144,
    0.1333333333333334,
    0.14285714285714163,
    0.15,
    0.1666666666666657,
    0.175,
    0.2,
    0.2,
    0.2,
    0.23333333333333323,
    0.26666666666666855,
    0.3250066489361703,
    0.4340995317225031,
)

REPAIR_PRICE = 0.004317328702234042
