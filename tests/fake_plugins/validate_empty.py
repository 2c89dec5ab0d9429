"""An external backend that defines nothing: every required entry and every
keras.backend name is missing."""
