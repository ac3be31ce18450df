//! Bitcoin address checks for the wallet a miner is configured with: bech32 (BIP173, segwit
//! v0) and bech32m (BIP350, v1+) and base58check P2PKH/P2SH. A miner mining to a mistyped
//! address mines for nobody, so the configuration writer refuses one whose checksum fails.

use sha2::{Digest, Sha256};

/// Which network an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Mainnet (`bc1…`, `1…`, `3…`).
    Main,
    /// Testnet or signet (`tb1…`, `m…`/`n…`, `2…`).
    Test,
    /// Regtest (`bcrt1…`).
    Regtest,
}

/// What kind of address it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// Base58check pay-to-public-key-hash.
    P2pkh,
    /// Base58check pay-to-script-hash.
    P2sh,
    /// Segwit with this witness version (0: bech32, 1..16: bech32m).
    Segwit(u8),
}

/// A checked address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// Network.
    pub network: Network,
    /// Kind.
    pub kind: AddressKind,
}

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const BECH32_CONST: u32 = 1;
const BECH32M_CONST: u32 = 0x2bc8_30a3;

fn polymod(values: &[u8]) -> u32 {
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
        chk = ((chk & 0x1ff_ffff) << 5) ^ u32::from(*v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

fn hrp_expand(hrp: &str) -> Vec<u8> {
    let mut v: Vec<u8> = hrp.bytes().map(|b| b >> 5).collect();
    v.push(0);
    v.extend(hrp.bytes().map(|b| b & 31));
    v
}

/// Regroups bits (5 → 8 for a witness program), refusing non-zero or oversized padding.
fn convert_bits(data: &[u8], from: u32, to: u32) -> Option<Vec<u8>> {
    let (mut acc, mut bits) = (0u32, 0u32);
    let maxv = (1u32 << to) - 1;
    let mut out = Vec::new();
    for &d in data {
        let d = u32::from(d);
        if d >> from != 0 {
            return None;
        }
        acc = (acc << from) | d;
        bits += from;
        while bits >= to {
            bits -= to;
            out.push(((acc >> bits) & maxv) as u8);
        }
    }
    if bits >= from || ((acc << (to - bits)) & maxv) != 0 {
        return None;
    }
    Some(out)
}

fn segwit(addr: &str) -> Result<Address, String> {
    let has_lower = addr.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = addr.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper {
        return Err("mixes upper and lower case".into());
    }
    if addr.len() > 90 {
        return Err("is longer than 90 characters".into());
    }
    let lower = addr.to_ascii_lowercase();
    let Some(sep) = lower.rfind('1') else {
        return Err("has no '1' separator".into());
    };
    let (hrp, rest) = (&lower[..sep], &lower[sep + 1..]);
    let network = match hrp {
        "bc" => Network::Main,
        "tb" => Network::Test,
        "bcrt" => Network::Regtest,
        other => return Err(format!("has prefix {other:?}, not bc1/tb1/bcrt1")),
    };
    if rest.len() < 6 {
        return Err("is too short".into());
    }
    let mut data = Vec::with_capacity(rest.len());
    for c in rest.bytes() {
        match CHARSET.iter().position(|&x| x == c) {
            Some(p) => data.push(p as u8),
            None => return Err(format!("contains {:?}, not a bech32 character", c as char)),
        }
    }
    let mut values = hrp_expand(hrp);
    values.extend(&data);
    let constant = polymod(&values);
    let payload = &data[..data.len() - 6];
    let Some((&version, program5)) = payload.split_first() else {
        return Err("has no witness version".into());
    };
    if version > 16 {
        return Err(format!("has witness version {version} (at most 16)"));
    }
    let wanted = if version == 0 {
        BECH32_CONST
    } else {
        BECH32M_CONST
    };
    if constant != wanted {
        return Err("has a wrong checksum (a typo?)".into());
    }
    let program = convert_bits(program5, 5, 8).ok_or("has invalid padding")?;
    if !(2..=40).contains(&program.len()) {
        return Err(format!(
            "has a {}-byte witness program (2 to 40)",
            program.len()
        ));
    }
    if version == 0 && program.len() != 20 && program.len() != 32 {
        return Err(format!(
            "is a v0 address with a {}-byte program (20 or 32)",
            program.len()
        ));
    }
    Ok(Address {
        network,
        kind: AddressKind::Segwit(version),
    })
}

const B58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

fn base58_decode(s: &str) -> Option<Vec<u8>> {
    let mut bytes: Vec<u8> = Vec::new(); // big-endian
    for c in s.bytes() {
        let mut carry = B58.iter().position(|&x| x == c)? as u32;
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

fn base58check(addr: &str) -> Result<Address, String> {
    let bytes = base58_decode(addr).ok_or("contains a character that is not base58")?;
    if bytes.len() != 25 {
        return Err(format!("decodes to {} bytes, not 25", bytes.len()));
    }
    let (body, check) = bytes.split_at(21);
    let hash = Sha256::digest(Sha256::digest(body));
    if &hash[..4] != check {
        return Err("has a wrong checksum (a typo?)".into());
    }
    let (network, kind) = match body[0] {
        0x00 => (Network::Main, AddressKind::P2pkh),
        0x05 => (Network::Main, AddressKind::P2sh),
        0x6f => (Network::Test, AddressKind::P2pkh),
        0xc4 => (Network::Test, AddressKind::P2sh),
        v => return Err(format!("has version byte 0x{v:02x}, not a bitcoin address")),
    };
    Ok(Address { network, kind })
}

/// Checks a bitcoin address (without any `.worker` suffix). The error completes the sentence
/// "the address …".
pub fn parse(addr: &str) -> Result<Address, String> {
    if addr.is_empty() {
        return Err("is empty".into());
    }
    let lower = addr.to_ascii_lowercase();
    if lower.starts_with("bc1") || lower.starts_with("tb1") || lower.starts_with("bcrt1") {
        segwit(addr)
    } else {
        base58check(addr)
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

    #[test]
    fn bip173_valid_segwit_v0() {
        let a = parse("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4").unwrap();
        assert_eq!(a.kind, AddressKind::Segwit(0));
        assert_eq!(a.network, Network::Main);
        let a = parse("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7").unwrap();
        assert_eq!(a.network, Network::Test);
        parse("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4").unwrap();
    }

    #[test]
    fn bip350_valid_taproot_and_bech32_checksum_on_v1_is_refused() {
        let a = parse("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0").unwrap();
        assert_eq!(a.kind, AddressKind::Segwit(1));
        // BIP350 invalid vector: v1 program with a bech32 (not bech32m) checksum.
        assert!(
            parse("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd")
                .unwrap_err()
                .contains("checksum")
        );
    }

    #[test]
    fn typos_mixed_case_and_foreign_prefixes_are_refused() {
        assert!(parse("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5")
            .unwrap_err()
            .contains("checksum"));
        assert!(parse("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7Kv8f3t4")
            .unwrap_err()
            .contains("case"));
        assert!(parse("ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4").is_err());
        assert!(parse("yourBtcAddress").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn base58check_p2pkh_and_p2sh() {
        let a = parse("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa").unwrap();
        assert_eq!(a.kind, AddressKind::P2pkh);
        let a = parse("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy").unwrap();
        assert_eq!(a.kind, AddressKind::P2sh);
        assert!(parse("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb")
            .unwrap_err()
            .contains("checksum"));
        assert!(parse("1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf0a").is_err());
    }

    #[test]
    fn worker_suffix_is_split_off() {
        assert_eq!(split_worker("bc1qabc.rig7"), ("bc1qabc", Some("rig7")));
        assert_eq!(split_worker("bc1qabc"), ("bc1qabc", None));
    }
}
