//! The simulated file system is reachable from integration tests.
use partlog::fs::sim::SimFs;
use partlog::{Partition, Record};

#[test]
fn sim_fs_is_available() -> Result<(), partlog::Error> {
    let fs = SimFs::new();
    let p = Partition::options().fs(fs.clone()).open("/x")?;
    p.append(Record::with_value("v"))?;
    assert_eq!(p.log_end_offset(), 1);
    Ok(())
}
