"""The contract shared by the dataflow and the server: events, Redis keys, list and profile encoding, settings."""

from online.contract.candidates import CandidateList, decode_candidates, encode_candidates, quantize_affinity
from online.contract.events import (
    DEFAULT_LIMITS,
    DEFAULT_WEIGHTS,
    HISTORICAL_LIMITS,
    Event,
    EventError,
    EventLimits,
    EventTypeWeights,
    parse_event,
    parse_ts,
)
from online.contract.keys import RedisKeys, stable_hash
from online.contract.profile import Profile, decode_profile, encode_profile
from online.contract.progress import AppendDecision, StreamProgress, append_decision, entry_ms, flow_stalled
from online.contract.settings import SETTINGS_DOC, Settings
from online.contract.streams import EVENT_FIELD, accepted_ms, decode_stream_fields, stream_fields

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_WEIGHTS",
    "EVENT_FIELD",
    "HISTORICAL_LIMITS",
    "SETTINGS_DOC",
    "AppendDecision",
    "CandidateList",
    "Event",
    "EventError",
    "EventLimits",
    "EventTypeWeights",
    "Profile",
    "RedisKeys",
    "Settings",
    "StreamProgress",
    "accepted_ms",
    "append_decision",
    "decode_candidates",
    "decode_profile",
    "decode_stream_fields",
    "encode_candidates",
    "encode_profile",
    "entry_ms",
    "flow_stalled",
    "parse_event",
    "parse_ts",
    "quantize_affinity",
    "stable_hash",
    "stream_fields",
]
