"""Deterministic data-path certificates of arXiv 2606.02608 (M-§5.1, E-§1).

Every function returns a :class:`~certkit.results.Certificate` (or, for the margin results,
a :class:`MarginStability`) labelled *certified* or *estimated*.

=========================================  =======================
function                                   paper result
=========================================  =======================
:func:`ce_path_bound`                      M-Lemma 5.1
:func:`margin_stability`                   M-Cor 5.2
:func:`frobenius_certificate`              M-Thm 5.3
:func:`elastic_net_certificate`            M-Thm 5.4
:func:`prune_restore_certificate`          M-Thm 5.5
:func:`restoration_criterion`              M-Cor 5.6
:func:`stationarity_certificate`           M-Thm 5.7
:func:`multilayer_certificate`             M-Thm 5.8
:func:`multilayer_stationarity_certificate` M-Thm 5.9
:func:`weighted_elastic_net_certificate`   E-Cor 1.1
:func:`weighted_stationarity_certificate`  E-Cor 1.2
:func:`multilayer_margin_stability`        E-Cor 1.3
:func:`frobenius_stationarity_certificate` M-Thm 4.7 ([D] skeleton)
=========================================  =======================
"""

from .cross_entropy_path import ce_path_bound
from .elastic_net_mask import (
    certificate_margin,
    elastic_net_certificate,
    weighted_elastic_net_certificate,
)
from .frobenius import frobenius_certificate, frobenius_stationarity_certificate
from .margin import MarginStability, margin_stability, multilayer_margin_stability
from .multilayer import MaskStep, multilayer_certificate, multilayer_stationarity_certificate
from .prune_restore import prune_restore_certificate, restoration_criterion
from .stationarity import (
    one_sided_derivative,
    stationarity_certificate,
    stationarity_slack,
    weighted_stationarity_certificate,
)

__all__ = [
    "MarginStability",
    "MaskStep",
    "ce_path_bound",
    "certificate_margin",
    "elastic_net_certificate",
    "frobenius_certificate",
    "frobenius_stationarity_certificate",
    "margin_stability",
    "multilayer_certificate",
    "multilayer_margin_stability",
    "multilayer_stationarity_certificate",
    "one_sided_derivative",
    "prune_restore_certificate",
    "restoration_criterion",
    "stationarity_certificate",
    "stationarity_slack",
    "weighted_elastic_net_certificate",
    "weighted_stationarity_certificate",
]
