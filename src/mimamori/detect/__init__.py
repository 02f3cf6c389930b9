"""Detectors: each turns a batch of normalised events into alerts of one shape."""

from __future__ import annotations

from mimamori.detect.base import AlertDraft, DetectContext, Detector, classify_threat, severity_rank
from mimamori.detect.beacon import BeaconDetector
from mimamori.detect.ids import IdsAlertDetector
from mimamori.detect.intel import IntelMatchDetector
from mimamori.detect.internet import (
    CloudSigninDetector,
    CredentialStuffingDetector,
    ExposedServiceDetector,
    WebAttackDetector,
)
from mimamori.detect.lateral import LateralMovementDetector
from mimamori.detect.malware import MalwareVerdictDetector
from mimamori.detect.outbound import OutboundScanDetector, OutboundSmtpDetector
from mimamori.detect.sigma import SigmaDetector
from mimamori.detect.volume import VolumeSpikeDetector

#: detector name -> class; the one place a detector is registered.
DETECTORS: dict[str, type[Detector]] = {
    IntelMatchDetector.name: IntelMatchDetector,
    BeaconDetector.name: BeaconDetector,
    IdsAlertDetector.name: IdsAlertDetector,
    MalwareVerdictDetector.name: MalwareVerdictDetector,
    OutboundScanDetector.name: OutboundScanDetector,
    OutboundSmtpDetector.name: OutboundSmtpDetector,
    LateralMovementDetector.name: LateralMovementDetector,
    VolumeSpikeDetector.name: VolumeSpikeDetector,
    WebAttackDetector.name: WebAttackDetector,
    CredentialStuffingDetector.name: CredentialStuffingDetector,
    CloudSigninDetector.name: CloudSigninDetector,
    ExposedServiceDetector.name: ExposedServiceDetector,
    SigmaDetector.name: SigmaDetector,
}


def default_detectors() -> list[Detector]:
    return [cls() for cls in DETECTORS.values()]


__all__ = [
    "DETECTORS",
    "AlertDraft",
    "DetectContext",
    "Detector",
    "classify_threat",
    "default_detectors",
    "severity_rank",
]
