"""The reference remote signing service: a test double of a hospital's signing server, speaking the protocol
of ``adapters.signers.remote`` on loopback (demo, tests, bench). Not for production keys."""
