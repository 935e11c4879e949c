// `apemu record`: umockdev-record's counterpart. Reads a live AP/vfio_ap sysfs (a real IBM Z
// machine's /sys, or an emulated tree mounted or exported somewhere) and writes a topology file
// that boots to the same tree, runtime state included: the LPAR configuration (QCI masks, the
// adapters with their type, mode, queue depth, message size, serial number, queues), the bus
// settings (apmask, aqmask, ap_domain, config_time, poll_thread, poll_timeout, interrupts), card
// config/chkstop, zcrypt online flags of cards and queues, queue states a boot does not give
// (uninitiated after a driver's release, error after a deconfiguration: from `reset` and the
// queue's config/chkstop), the vfio_ap mdevs with their type and assignment, and the zcrypt
// multi-node devices with their masks. It only reads.
//
// What cannot be recovered from sysfs: adapters the LPAR has but no kernel driver shows (types
// the profile does not support), the facility flags other than APXA, queue driver_overrides,
// counters (SEQNUM, scans, request counts), running guests, and gaps in the IOMMU group and
// zcrypt minor numbers (the boot creates mdevs and nodes in number order, so the numbers are
// the same whenever there was no gap). The profile matters: a card's
// `depth` means qd under older kernels and qd + 1 under 6.19 (ap-bus.md §4.1), so the recording
// must be made with the `--kernel` of the machine it reads.
#pragma once

#include <string>

#include "apemu/base/result.h"
#include "apemu/profile/kernel_profile.h"

namespace apemu::testbed {

/// The topology TOML of the sysfs tree at `sysfs_root` (e.g. "/sys"), as seen by a machine of
/// `profile`. Returns: ENODEV when there is no bus/ap, the errno of a file that exists but
/// cannot be read, EINVAL (with the path) for a value that does not parse.
Result<std::string> record_topology(const std::string& sysfs_root,
                                    const profile::KernelProfile& profile);

} // namespace apemu::testbed
