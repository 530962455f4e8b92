"""Pure functions over bytes: object ids, object codecs, chunking. No I/O."""
