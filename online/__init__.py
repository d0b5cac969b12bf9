"""The learning side of livereco: event contract, online models, candidate generation. No I/O."""
