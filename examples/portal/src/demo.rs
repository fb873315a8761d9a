//! Demo data, created on first start: three training providers, their staff, an operator and
//! 50,000 job-seekers who are plainly fictitious (names from short lists, `.invalid` e-mail
//! addresses, phone numbers from the range reserved for fiction).

use rand::rngs::SysRng;
use rand::TryRng;
use verrou::store::Store;
use verrou::totp::OtpAuthUri;
use verrou::{ClientContext, Clock, ExposeSecret, TotpParams, TotpSecret, UserId, Verrou};

use crate::data::{DataError, PortalDb, Role, Seeker};

/// The organisations: id, name, how many job-seekers they follow.
pub const ORGS: [(&str, &str, usize); 3] = [
    ("formation-nord", "Formation Nord", 20_000),
    ("atelier-sud", "Atelier Sud", 17_000),
    ("campus-est", "Campus Est", 13_000),
];

/// The accounts: login, name, organisation (none for the operator), role, enrolled already.
pub const ACCOUNTS: [(&str, &str, Option<&str>, Role, bool); 7] = [
    (
        "marie",
        "Marie Lefèvre",
        Some("formation-nord"),
        Role::Staff,
        true,
    ),
    (
        "paul",
        "Paul Martin",
        Some("formation-nord"),
        Role::Staff,
        false,
    ),
    (
        "ines",
        "Inès Haddad",
        Some("atelier-sud"),
        Role::Staff,
        true,
    ),
    (
        "hugo",
        "Hugo Bernard",
        Some("atelier-sud"),
        Role::Staff,
        false,
    ),
    ("lea", "Léa Nguyen", Some("campus-est"), Role::Staff, true),
    ("tom", "Tom Girard", Some("campus-est"), Role::Staff, false),
    ("operateur", "Opérateur Agence", None, Role::Operator, true),
];

const FIRST: [&str; 24] = [
    "Adam", "Alice", "Amir", "Camille", "Chloé", "Claire", "David", "Emma", "Farid", "Hélène",
    "Hugo", "Jade", "Julien", "Karim", "Léo", "Lina", "Louis", "Manon", "Nadia", "Noah", "Sarah",
    "Sofia", "Thomas", "Yanis",
];
const LAST: [&str; 24] = [
    "Aubert",
    "Benali",
    "Blanc",
    "Bonnet",
    "Chevalier",
    "Colin",
    "Diallo",
    "Dubois",
    "Durand",
    "Fabre",
    "Fontaine",
    "Garnier",
    "Gauthier",
    "Lambert",
    "Leroy",
    "Mercier",
    "Morel",
    "Moreau",
    "Perrin",
    "Petit",
    "Renard",
    "Roussel",
    "Simon",
    "Vincent",
];
const TOWNS: [&str; 12] = [
    "Lille",
    "Roubaix",
    "Arras",
    "Amiens",
    "Marseille",
    "Toulon",
    "Nîmes",
    "Montpellier",
    "Strasbourg",
    "Metz",
    "Nancy",
    "Reims",
];
const STATUSES: [&str; 4] = ["registered", "in training", "trained", "left"];

/// A small deterministic sequence for picking demo values (not for anything secret).
struct Picker(u64);

impl Picker {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        let len = from.len().max(1) as u64;
        from.get((self.next() % len) as usize)
            .copied()
            .unwrap_or("")
    }
}

/// The fictitious job-seekers of organisation number `org_index`.
pub fn seekers(org_index: u64, count: usize) -> Vec<Seeker> {
    let mut picker = Picker(org_index.wrapping_mul(1_000_003));
    (0..count)
        .map(|n| {
            let (first, last) = (picker.pick(&FIRST), picker.pick(&LAST));
            let number = picker.next() % 10_000;
            Seeker {
                id: 0,
                name: format!("{first} {last}"),
                email: format!(
                    "{}.{}.{n}@exemple.invalid",
                    first.to_lowercase(),
                    last.to_lowercase()
                ),
                phone: format!("06 39 98 {:02} {:02}", number / 100, number % 100),
                town: picker.pick(&TOWNS).to_owned(),
                status: picker.pick(&STATUSES).to_owned(),
            }
        })
        .collect()
}

/// A password for a demo account: 16 characters from the OS RNG.
fn demo_password() -> Result<String, DataError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 16];
    SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|_| DataError::Hashing)?;
    Ok(bytes
        .iter()
        .map(|byte| {
            let index = usize::from(*byte) % ALPHABET.len();
            char::from(ALPHABET.get(index).copied().unwrap_or(b'a'))
        })
        .collect())
}

/// Creates the demo data: organisations, accounts (the enrolled ones with a TOTP secret made
/// active through verrou's operator import), job-seekers.
pub async fn create<S: Store, C: Clock>(
    db: &PortalDb,
    verrou: &Verrou<S, C>,
    issuer: &str,
    per_mille: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    // Whatever an interrupted first start left goes: the data is made whole or not at all.
    db.clear_demo().await?;
    for (index, (id, name, count)) in ORGS.iter().enumerate() {
        db.insert_org(id, name).await?;
        let count = count * per_mille.min(1000) / 1000;
        db.insert_seekers(id, &seekers(index as u64 + 1, count))
            .await?;
    }
    let ctx = ClientContext::unknown();
    for (login, name, org, role, enrolled) in ACCOUNTS {
        let password = demo_password()?;
        db.insert_staff(login, name, org, role, &password).await?;
        let secret = if enrolled {
            let secret = TotpSecret::generate()?;
            let text = secret.to_base32().expose_secret().to_owned();
            let uri = OtpAuthUri::new(Some(issuer), login, secret, TotpParams::DEFAULT)?;
            let user = UserId::new(login)?;
            // A factor an interrupted first start imported is replaced.
            verrou.remove_totp_factor(&user).await?;
            verrou.danger_import_active_totp(&user, uri, &ctx).await?;
            Some(text)
        } else {
            None
        };
        db.insert_demo_account(login, &password, secret.as_deref())
            .await?;
    }
    Ok(())
}
