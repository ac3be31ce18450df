//! Bitcoin address checks for the coin addresses a miner mines to: segwit addresses in bech32
//! (BIP173, witness version 0) or bech32m (BIP350, versions 1–16), and legacy base58check
//! addresses (P2PKH, P2SH). Pure functions: a typo in a payout address costs every block the
//! herd might find, so the checksum is verified, not just the alphabet.

use sha2::{Digest, Sha256};

/// Which chain an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Bitcoin mainnet (`bc1…`, `1…`, `3…`).
    Main,
    /// Testnet / signet (`tb1…`, `m…`/`n…`, `2…`).
    Test,
    /// Regtest (`bcrt1…`).
    Regtest,
}

/// What kind of address it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Pay to public key hash (base58check).
    P2pkh,
    /// Pay to script hash (base58check).
    P2sh,
    /// Segwit with its witness version (0 uses bech32, 1–16 bech32m).
    Segwit(u8),
}

/// A checked address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Its chain.
    pub network: Network,
    /// Its kind.
    pub kind: Kind,
}

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const BECH32_CONST: u32 = 1;
const BECH32M_CONST: u32 = 0x2bc8_30a3;

fn polymod(values: impl Iterator<Item = u8>) -> u32 {
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// Regroups bits (5-bit groups to bytes), refusing non-zero or overlong padding (BIP173).
fn convert_bits(data: &[u8], from: u32, to: u32) -> Option<Vec<u8>> {
    let (mut acc, mut bits) = (0u32, 0u32);
    let maxv = (1u32 << to) - 1;
    let mut out = Vec::with_capacity(data.len() * from as usize / to as usize + 1);
    for &v in data {
        acc = (acc << from) | u32::from(v);
        bits += from;
        while bits >= to {
            bits -= to;
            out.push(((acc >> bits) & maxv) as u8);
        }
    }
    if bits >= from || (acc << (to - bits)) & maxv != 0 {
        return None;
    }
    Some(out)
}

/// Checks a segwit address (bech32 / bech32m). `Err` says what is wrong.
pub fn check_segwit(addr: &str) -> Result<Checked, String> {
    let has_lower = addr.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = addr.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper {
        return Err("mixes upper and lower case".into());
    }
    if addr.len() > 90 {
        return Err("is longer than 90 characters".into());
    }
    let lower = addr.to_ascii_lowercase();
    let Some((hrp, data)) = lower.rsplit_once('1') else {
        return Err("has no separator".into());
    };
    let network = match hrp {
        "bc" => Network::Main,
        "tb" => Network::Test,
        "bcrt" => Network::Regtest,
        _ => return Err(format!("starts with {hrp:?}, not bc, tb or bcrt")),
    };
    if data.len() < 7 {
        return Err("is too short".into());
    }
    let values = data
        .bytes()
        .map(|c| CHARSET.iter().position(|&x| x == c).map(|p| p as u8))
        .collect::<Option<Vec<u8>>>()
        .ok_or("contains a character that bech32 does not use (b, i, o or 1 after bc1)")?;
    let expanded = hrp
        .bytes()
        .map(|b| b >> 5)
        .chain(std::iter::once(0))
        .chain(hrp.bytes().map(|b| b & 31))
        .chain(values.iter().copied());
    let constant = polymod(expanded);
    let version = values[0];
    let wanted = if version == 0 {
        BECH32_CONST
    } else {
        BECH32M_CONST
    };
    if constant != wanted {
        return Err("has a wrong checksum (a typo?)".into());
    }
    if version > 16 {
        return Err(format!("has witness version {version}, above 16"));
    }
    let program = convert_bits(&values[1..values.len() - 6], 5, 8)
        .ok_or("has bad padding in its witness program")?;
    if !(2..=40).contains(&program.len()) || (version == 0 && ![20, 32].contains(&program.len())) {
        return Err(format!(
            "has a witness program of {} bytes, not allowed for version {version}",
            program.len()
        ));
    }
    Ok(Checked {
        network,
        kind: Kind::Segwit(version),
    })
}

const BASE58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Decodes base58 (no checksum check).
fn base58_decode(s: &str) -> Option<Vec<u8>> {
    let mut bytes: Vec<u8> = Vec::with_capacity(s.len());
    for c in s.bytes() {
        let mut carry = BASE58.iter().position(|&x| x == c)? as u32;
        for b in bytes.iter_mut().rev() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = s.bytes().take_while(|&c| c == b'1').count();
    let mut out = vec![0u8; zeros];
    out.extend(bytes);
    Some(out)
}

/// Checks a legacy base58check address (P2PKH or P2SH).
pub fn check_base58(addr: &str) -> Result<Checked, String> {
    let raw = base58_decode(addr).ok_or("contains a character base58 does not use (0, O, I, l)")?;
    if raw.len() != 25 {
        return Err(format!("decodes to {} bytes, not 25", raw.len()));
    }
    let (payload, checksum) = raw.split_at(21);
    let digest = Sha256::digest(Sha256::digest(payload));
    if digest[..4] != *checksum {
        return Err("has a wrong checksum (a typo?)".into());
    }
    let (network, kind) = match payload[0] {
        0x00 => (Network::Main, Kind::P2pkh),
        0x05 => (Network::Main, Kind::P2sh),
        0x6f => (Network::Test, Kind::P2pkh),
        0xc4 => (Network::Test, Kind::P2sh),
        v => return Err(format!("has version byte {v:#04x}, not a Bitcoin address")),
    };
    Ok(Checked { network, kind })
}

/// Checks an address as a miner's `btcString` holds it: `address` or `address.worker`.
/// The error is a sentence for the settings form.
pub fn check(input: &str) -> Result<Checked, String> {
    let input = input.trim();
    if input.is_empty() {
        return Err("enter a Bitcoin address".into());
    }
    let (addr, _) = split_worker(input);
    check_address(addr).map_err(|why| format!("this is not a valid Bitcoin address: it {why}"))
}

/// Checks a bare address (no `.worker`). The error completes the sentence "the address …".
pub fn check_address(addr: &str) -> Result<Checked, String> {
    if addr.is_empty() {
        return Err("is empty".into());
    }
    let lower = addr.to_ascii_lowercase();
    if lower.starts_with("bc1") || lower.starts_with("tb1") || lower.starts_with("bcrt1") {
        check_segwit(addr)
    } else {
        check_base58(addr)
    }
}

/// Splits NerdMiner's `btcString` (`address` or `address.worker`) into address and worker.
pub fn split_worker(btc_string: &str) -> (&str, Option<&str>) {
    match btc_string.split_once('.') {
        Some((a, w)) => (a, Some(w)),
        None => (btc_string, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Valid addresses from BIP173 and BIP350 (and well-known legacy ones).
    const VALID: &[(&str, Network, Kind)] = &[
        (
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
            Network::Main,
            Kind::Segwit(0),
        ),
        (
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
            Network::Test,
            Kind::Segwit(0),
        ),
        (
            "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
            Network::Main,
            Kind::Segwit(1),
        ),
        ("BC1SW50QGDZ25J", Network::Main, Kind::Segwit(16)),
        (
            "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs",
            Network::Main,
            Kind::Segwit(2),
        ),
        (
            "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
            Network::Test,
            Kind::Segwit(0),
        ),
        (
            "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
            Network::Test,
            Kind::Segwit(1),
        ),
        (
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
            Network::Main,
            Kind::Segwit(1),
        ),
        (
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            Network::Main,
            Kind::P2pkh,
        ),
        (
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
            Network::Main,
            Kind::P2pkh,
        ),
        (
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
            Network::Main,
            Kind::P2sh,
        ),
    ];

    // Invalid ones from BIP350 / BIP173 and typos of valid ones.
    const INVALID: &[&str] = &[
        "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut",
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
        "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
        "bc1rw5uspcuh",
        "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",
        "bc1gmk9yu",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7Kv8f3t4",
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb",
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfN0",
        "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNL",
        "",
        "yourBtcAddress",
        "<script>alert(1)</script>",
    ];

    #[test]
    fn bip_vectors_are_accepted() {
        for (addr, network, kind) in VALID {
            assert_eq!(
                check(addr),
                Ok(Checked {
                    network: *network,
                    kind: *kind
                }),
                "{addr}"
            );
        }
    }

    #[test]
    fn bad_addresses_are_refused_with_a_reason() {
        for addr in INVALID {
            let err = check(addr).expect_err(addr);
            assert!(err.contains("address"), "{addr}: {err}");
        }
        assert!(check("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5")
            .unwrap_err()
            .contains("checksum"));
    }

    #[test]
    fn worker_suffix_is_allowed() {
        assert!(check("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa.rack1").is_ok());
        assert!(check(" bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4 ").is_ok());
    }
}
