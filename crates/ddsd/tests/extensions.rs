//! Who may call the operator extensions, against the real binary: the generated admin key and a
//! configured key marked `admin = true` may; any other key gets `Forbidden.RAM` (403) and changes
//! nothing. The vendor actions stay open to every key.

mod common;

use acs_rpc::Secret;
use ddsd_client::{Client, ClientError, Credentials, Signature};

fn key(id: &str, secret: &str) -> Credentials {
    Credentials {
        access_key_id: id.into(),
        secret: Secret::new(secret),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_keys_are_the_generated_one_and_those_marked_admin() {
    let root = common::TempDir::new("ext");
    let config = root.join("ddsd.toml");
    std::fs::write(
        &config,
        "sim_speed = 200\n\
         [[access_keys]]\nid = \"testid\"\nsecret = \"testsecret\"\n\
         [[access_keys]]\nid = \"ops\"\nsecret = \"opssecret\"\nadmin = true\n",
    )
    .unwrap();
    let data_dir = root.join("data");
    let mut cmd = common::serve_command();
    cmd.args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data_dir)
        .stderr(std::process::Stdio::null());
    let server = common::spawn(cmd);
    let endpoint = server.endpoint.clone();
    let generated = Credentials::from_data_dir(&data_dir).unwrap();
    let client = |c: Credentials| Client::with_signature(&endpoint, c, Signature::V3).unwrap();
    let plain = client(key("testid", "testsecret"));
    let ops = client(key("ops", "opssecret"));
    let admin = client(generated);

    let publish = |kernel: &'static str, date: &'static str| {
        [
            ("EngineVersion", "4.4"),
            ("KernelVersion", kernel),
            ("ReleaseNote", "Operator build."),
            ("ReleaseDate", date),
        ]
    };
    match plain
        .call(
            "DdsdPublishKernelVersion",
            &publish("mongodb_20990101_4.4.99", "2099-01-02"),
        )
        .await
    {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (403, "Forbidden.RAM"))
        }
        other => panic!("{other:?}"),
    }
    let notes = |c: &Client| {
        let c = c.clone();
        async move {
            c.call(
                "DescribeKernelReleaseNotes",
                &[("KernelVersion", "mongodb_20240119_4.4.19")],
            )
            .await
            .unwrap()["ReleaseNotes"]["ReleaseNote"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["KernelVersion"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert!(
        notes(&plain).await.is_empty(),
        "the refused publish changed nothing"
    );

    ops.call(
        "DdsdPublishKernelVersion",
        &publish("mongodb_20990101_4.4.99", "2099-01-02"),
    )
    .await
    .unwrap();
    admin
        .call(
            "DdsdPublishKernelVersion",
            &publish("mongodb_20990201_4.4.100", "2099-02-02"),
        )
        .await
        .unwrap();
    assert_eq!(
        notes(&plain).await,
        ["mongodb_20990101_4.4.99", "mongodb_20990201_4.4.100"]
    );
    // The vendor actions are for everyone.
    plain
        .call(
            "CreateDBInstance",
            &[
                ("RegionId", "cn-hangzhou"),
                ("EngineVersion", "4.4"),
                ("DBInstanceClass", "dds.mongo.mid"),
                ("DBInstanceStorage", "20"),
            ],
        )
        .await
        .unwrap();
    drop(server);
}
