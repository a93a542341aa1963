"""Token usage and cost, per turn (one model request) and per session."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# USD per million tokens: input, output, cache write (5 minutes), cache read. Published list prices.
PRICES: dict[str, tuple[float, float, float, float]] = {
    "claude-sonnet-5-5": (2.0, 10.0, 2.5, 0.20),
    "claude-sonnet-5": (2.0, 10.0, 2.5, 0.20),
    "claude-opus-5-5": (4.0, 20.0, 5.0, 0.40),
    "claude-haiku-4-5": (1.0, 5.0, 1.25, 0.10),
    "claude-sonnet-4-6": (3.0, 15.0, 3.75, 0.30),
    "claude-sonnet-4-5": (3.0, 15.0, 3.75, 0.30),
}


def price_for(model: str) -> tuple[float, float, float, float] | None:
    if model in PRICES:
        return PRICES[model]
    for name in sorted(PRICES, key=len, reverse=True):  # dated ids: claude-haiku-4-5-20251001
        if model.startswith(name):
            return PRICES[name]
    return None


@dataclass
class TurnUsage:
    turn: int
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    request_bytes: int = 0
    tool_calls: int = 0

    @property
    def total_input(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    @property
    def cost_usd(self) -> float | None:
        price = price_for(self.model)
        if price is None:
            return None
        p_in, p_out, p_write, p_read = price
        return (self.input_tokens * p_in + self.output_tokens * p_out + self.cache_creation_input_tokens * p_write
                + self.cache_read_input_tokens * p_read) / 1_000_000

    def to_dict(self) -> dict:
        return {**asdict(self), "cost_usd": self.cost_usd}


@dataclass
class UsageLedger:
    turns: list[TurnUsage] = field(default_factory=list)

    def add(self, model: str, usage: dict | None, request_bytes: int, tool_calls: int = 0) -> TurnUsage:
        u = usage or {}
        turn = TurnUsage(turn=len(self.turns) + 1, model=model, request_bytes=request_bytes, tool_calls=tool_calls,
                         **{k: int(u.get(k) or 0) for k in ("input_tokens", "output_tokens",
                                                            "cache_creation_input_tokens", "cache_read_input_tokens")})
        self.turns.append(turn)
        return turn

    def totals(self) -> dict:
        keys = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                "request_bytes", "tool_calls")
        out = {k: sum(getattr(t, k) for t in self.turns) for k in keys}
        costs = [t.cost_usd for t in self.turns]
        out["cost_usd"] = None if any(c is None for c in costs) else round(sum(c for c in costs if c), 6)
        total_in = sum(t.total_input for t in self.turns)
        out["cache_hit_share"] = round(out["cache_read_input_tokens"] / total_in, 4) if total_in else 0.0
        out["requests"] = len(self.turns)
        return out
