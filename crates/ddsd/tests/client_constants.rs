//! `ddsd-client` carries its own copy of what it shares with the server (the server must not
//! depend on a client); these keep the copies equal.

#[test]
fn the_client_speaks_the_served_version_and_reads_the_written_key_file() {
    assert_eq!(ddsd_client::API_VERSION, ddsd::server::actions::API_VERSION);
    assert_eq!(
        ddsd_client::ADMIN_KEY_FILE,
        ddsd::server::keys::ADMIN_KEY_FILE
    );
}
