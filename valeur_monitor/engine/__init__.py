"""The pure value engine: events + customer state + rules + stream time -> new state and values."""
