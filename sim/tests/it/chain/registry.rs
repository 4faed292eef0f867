//! Keel's parameter registry (`sim/contracts/KeelParams.sol`) on anvil: compiled with the pinned
//! solc-js, deployed, driven by its owner, read back with `params()` exactly as the chain
//! poller decodes it; what its checks refuse reverts, and only the owner may change it.

use alloy::primitives::Address;
use keel_sim::anvil::contracts::rpc::IKeelParams as Rpc;
use keel_sim::anvil::registry::{
    deploy_keel_params, portfolio_key, set_band, set_global_paused, set_targets,
};

use super::util::chain;

#[tokio::test]
async fn the_registry_compiles_deploys_and_reads_back_what_its_owner_set() {
    let chain = chain().await;
    let registry = deploy_keel_params(&chain, 0).await.expect("compile and deploy KeelParams");
    let owner = chain.wallet_provider(0);
    let reader = Rpc::new(registry, chain.provider());
    assert_eq!(reader.owner().call().await.unwrap(), chain.address(0));
    let p = reader.params().call().await.unwrap();
    assert!(!p.paused && p.changedAt == 0 && p.all.is_empty());

    let (a, b) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
    let t = set_targets(&owner, registry, "core", &[(a, 6000), (b, 4000)]).await.unwrap();
    let g = set_global_paused(&owner, registry, true).await.unwrap();
    let band = set_band(&owner, registry, "alt", 150).await.unwrap();
    let p = reader.params().call().await.unwrap();
    assert!(p.paused && p.changedAt == g);
    assert_eq!(p.all.len(), 2);
    let core = &p.all[0];
    assert_eq!(
        (core.id, core.tokens.clone(), core.weightsBps.clone()),
        (portfolio_key("core"), vec![a, b], vec![6000, 4000])
    );
    assert_eq!((core.bandBps, core.paused, core.changedAt), (0, false, t));
    assert_eq!((p.all[1].id, p.all[1].bandBps, p.all[1].changedAt), (portfolio_key("alt"), 150, band));

    // Shape checks revert: a sum off 10 000, a duplicate token, a band above 10 000.
    assert!(set_targets(&owner, registry, "core", &[(a, 6000), (b, 3999)]).await.is_err());
    assert!(set_targets(&owner, registry, "core", &[(a, 5000), (a, 5000)]).await.is_err());
    assert!(set_band(&owner, registry, "core", 10_001).await.is_err());
    // Only the owner may change anything.
    let stranger = chain.wallet_provider(1);
    assert!(set_global_paused(&stranger, registry, false).await.is_err());
    assert!(set_targets(&stranger, registry, "core", &[(a, 10_000)]).await.is_err());
    let after = reader.params().call().await.unwrap();
    assert!(after.paused);
    assert_eq!(after.all[0].weightsBps, vec![6000, 4000]);
}
