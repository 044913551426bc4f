"""Everything that talks to Redis: key schema, embedded server, streams, state, election."""
