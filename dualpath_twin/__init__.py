"""dualpath-twin: a digital twin of PD-disaggregated LLM inference clusters loading KV-cache from storage."""

__version__ = "0.1.0"
