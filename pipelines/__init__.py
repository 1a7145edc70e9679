"""Bus and search-store engines, and the runtime that wires stages to topics."""
