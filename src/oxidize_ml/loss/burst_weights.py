"""Fitted parameters of the burst-aware loss predictor: GENERATED, do not edit.

Regenerate with ``python -m oxidize_ml.training.loss_burst --out src/oxidize_ml/loss/burst_weights.py``
(`oxidize_ml.training.loss_burst`: training split only). Provenance:

- rows: 334580
- positive_rate: 0.10689820072927252
- runs: 142
- traces: ['TMobile-LTE-short.down', 'TMobile-LTE-short.up', 'Verizon-EVDO-driving.down', 'Verizon-EVDO-driving.up']
- train_pr_auc: 0.4844696329041197
- train_pr_auc_ewma: 0.2515872645454583
- ewma_overhead: 0.06006926574267395
"""

from __future__ import annotations

FEATURE_VERSION = 2

WEIGHTS: tuple[float, ...] = (
    -4.388308353041211,  # bias
    0.6641671798057248,  # tsl<0.005s
    0.5149690321062549,  # tsl<0.015s
    0.48658945757945593,  # tsl<0.035s
    0.37883363590485025,  # tsl<0.075s
    0.005800397832974895,  # tsl<0.15s
    -0.12593851604007164,  # tsl<0.3s
    -0.2150160606112979,  # tsl<0.6s
    -0.480454817815131,  # tsl<1.2s
    -0.46163676340353155,  # tsl<2.5s
    -0.3280265707762989,  # tsl<5s
    -0.439286974584184,  # tsl>=5s
    -0.43096001298490494,  # phase<0.25
    -0.12821879879661505,  # phase<0.5
    0.01683509839520052,  # phase<0.75
    0.029688716640886435,  # phase<0.9
    0.06399243949440189,  # phase<1.1
    0.08767302753299705,  # phase<1.5
    0.07756048441035175,  # phase<2
    0.10389210118722068,  # phase<3
    -0.22736823483927385,  # phase>=3
    0.4069051789584863,  # phase_none
    0.8349423651610569,  # sqrt_fast_loss
    0.7411263129045381,  # sqrt_slow_loss
    0.8040723600102943,  # log_episodes
    -0.5244017950047818,  # burst_severity
    -0.0069675049405150315,  # queue_vs_loss_queue
    0.4912952576082546,  # no_loss_yet
    0.4822522157780237,  # rtt_gradient
    0.13552910487839673,  # delivery_rate_trend
    -0.1937556889085748,  # jitter_ratio
    -0.5889940775120074,  # queue_share
    0.42574314237309796,  # queue_vs_max
    0.5223877392830946,  # sqrt_loss_last_rtt
    0.40851061179638104,  # sqrt_loss_prev_rtt
    0.8882634143867989,  # inflight_vs_loss
    0.22809751182794544,  # cwnd_vs_loss
    0.32515301313249784,  # log_bdp_ratio
    0.2839528430939119,  # cwnd_growth
    0.5310987368148219,  # long_rtt_x_tsl<0.005s
    0.01922207237453416,  # long_rtt_x_tsl<0.015s
    -0.05370624370116484,  # long_rtt_x_tsl<0.035s
    -0.09987256904294302,  # long_rtt_x_tsl<0.075s
    -0.0632802749925228,  # long_rtt_x_tsl<0.15s
    0.06585663573047174,  # long_rtt_x_tsl<0.3s
    -0.07541682788390487,  # long_rtt_x_tsl<0.6s
    -0.11726078848108276,  # long_rtt_x_tsl<1.2s
    -0.028959705923262784,  # long_rtt_x_tsl<2.5s
    -0.0431546505825919,  # long_rtt_x_tsl<5s
    -0.25954846962546246,  # long_rtt_x_tsl>=5s
    -0.1250220853131154,  # long_rtt
    0.39224175180209403,  # long_rtt_x_sqrt_fast_loss
    0.28816723817609463,  # long_rtt_x_queue_vs_loss_queue
    -0.27217019724104635,  # long_rtt_x_inflight_vs_loss
)

SEVERITY: tuple[float, ...] = (
    0.00799999999999983,
    0.010810810810810523,
    0.01666666666666643,
    0.019999999999999928,
    0.024953617810760775,
    0.02857142857142856,
    0.033333333333334283,
    0.040000000000000036,
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
    0.10677655677655765,
    0.125,
    0.1333333333333334,
    0.1452380952380949,
    0.15999999999999998,
    0.175,
    0.2,
    0.2,
    0.23333333333333323,
    0.28104910714286063,
    0.3133333333333332,
    0.4060594411375662,
    0.5196088207493094,
)

REPAIR_PRICE = 0.004392305548539457
