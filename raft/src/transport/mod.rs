//! Length-prefixed frames over TCP between peers.
