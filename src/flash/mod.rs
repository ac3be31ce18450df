//! A miner's flash: the SPIFFS filesystem that holds its `/config.json` (pure, no I/O).
//! Later layers (partition table, ROM-loader transport, safe writer) live beside it.

pub mod spiffs;
