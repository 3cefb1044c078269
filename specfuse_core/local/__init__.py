"""Members that run a ``transformers`` causal LM in this process (needs torch): loading
(:mod:`.member`), one request's session and cache (:mod:`.session`), packed scoring (:mod:`.packed`),
cache operations (:mod:`.kv_cache`) and token choice (:mod:`.sampling`)."""

from .member import Member
from .sampling import TokenChooser
from .session import LocalSession

__all__ = ["LocalSession", "Member", "TokenChooser"]
