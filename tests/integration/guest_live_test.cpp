// The guest side end to end (issue 10 acceptance 2): `apemu ctl guest rsa` inside `apemu run`
// drives NQAP/DQAP on a guest's vCPU against an emulated accelerator queue; every result must
// equal `openssl pkeyutl` computing the same raw RSA operation (guest-ap.md §6.1, §6.2).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "integration/shell.h"

#include <unistd.h>

#include <fstream>
#include <string>

using ::testing::HasSubstr;
using apemu::testing::sh;

namespace {

/// Runs `body` with bash inside `apemu run` (default topology: adapter 00 is a CEX8 accelerator
/// with domains 4-7, adapter 01 a CCA card). Helpers: ctl ARGS (apemu ctl).
apemu::testing::Output run_script(const std::string& body) {
  const std::string path = "/tmp/apemu-guest-" + std::to_string(::getpid()) + ".sh";
  std::ofstream(path) << "set -u\nctl() { " APEMU_BIN " ctl \"$@\"; }\n"
                      << "U=62177883-f1bb-47f0-914d-32a22e3a8804\n"
                         "M=/sys/devices/vfio_ap/matrix\n"
                         "T=$(mktemp -d)\n"
                         "echo -0 > /sys/bus/ap/apmask\n"
                         "echo $U > $M/mdev_supported_types/vfio_ap-passthrough/create\n"
                         "echo 0 > $M/$U/assign_adapter; echo 4 > $M/$U/assign_domain\n"
                         "ctl guest start --mdev $U --name rsa-guest\n"
                      << body << "rm -r $T\n";
  auto o = sh(std::string(APEMU_BIN) + " run -- bash " + path);
  ::unlink(path.c_str());
  return o;
}

TEST(GuestLive, CtlGuestRsaEqualsOpenSslForEveryKeySizeAndForm) {
  REQUIRE_FACILITIES();
  if (sh("command -v openssl").status != 0) GTEST_SKIP() << "openssl is not installed";
  auto o = run_script(
      "for bits in 1024 2048 4096; do\n"
      "  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:$bits -out $T/k.pem 2>/dev/null\n"
      "  openssl pkey -in $T/k.pem -pubout -out $T/pub.pem\n"
      "  { head -c 1 /dev/zero; head -c $((bits / 8 - 1)) /dev/urandom; } > $T/in\n"
      "  openssl pkeyutl -decrypt -inkey $T/k.pem -pkeyopt rsa_padding_mode:none -in $T/in "
      "-out $T/priv.ref\n"
      "  openssl pkeyutl -encrypt -pubin -inkey $T/pub.pem -pkeyopt rsa_padding_mode:none "
      "-in $T/in -out $T/pub.ref\n"
      "  ctl guest rsa --mdev $U --apqn 00.0004 --key $T/k.pem --in $T/in --out $T/me >/dev/null\n"
      "  cmp -s $T/me $T/priv.ref && echo \"$bits me ok\" || echo \"$bits me DIFFERS\"\n"
      "  ctl guest rsa --mdev $U --apqn 00.0004 --key $T/k.pem --crt --in $T/in --out $T/crt "
      ">/dev/null\n"
      "  cmp -s $T/crt $T/priv.ref && echo \"$bits crt ok\" || echo \"$bits crt DIFFERS\"\n"
      "  ctl guest rsa --mdev $U --apqn 00.0004 --key $T/pub.pem --public --in $T/in --out $T/pub "
      "--irq 6 >/dev/null\n"
      "  cmp -s $T/pub $T/pub.ref && echo \"$bits public ok\" || echo \"$bits public DIFFERS\"\n"
      "done\n");
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(o.text, "1024 me ok\n1024 crt ok\n1024 public ok\n"
                    "2048 me ok\n2048 crt ok\n2048 public ok\n"
                    "4096 me ok\n4096 crt ok\n4096 public ok\n");
}

TEST(GuestLive, CtlGuestVerbsPrintTheArchitecturesNames) {
  REQUIRE_FACILITIES();
  if (sh("command -v openssl").status != 0) GTEST_SKIP() << "openssl is not installed";
  auto o = run_script(
      "ctl guest tapq --mdev $U --apqn 00.0004\n"
      "ctl guest aqic --mdev $U --apqn 00.0004 --isc 6\n"
      "ctl guest aqic --mdev $U --apqn 00.0004 --isc 6\n"
      "ctl guest zapq --mdev $U --apqn 00.0004\n"
      // 01.0004 is the host's CCA queue, outside the guest's masks: Q_NOT_AVAIL.
      "ctl guest tapq --mdev $U --apqn 01.0004\n"
      "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out $T/k.pem 2>/dev/null\n"
      "{ head -c 1 /dev/zero; head -c 127 /dev/urandom; } > $T/in\n"
      "ctl guest rsa --mdev $U --apqn 01.0004 --key $T/k.pem --in $T/in --out $T/o; echo rc=$?\n"
      "test -e $T/o && echo written || echo 'not written'\n"
      "ctl guest qci --mdev $U | head -3\n");
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(o.text,
            "TAPQ 00.0004: cc 0, E=1 R=0 F=0 A=0 I=0 RC=0x00 (NORMAL)\n"
            "GR2 0xea0000000e000007: facilities 0xea000000 type 14 domains 0 ml 0 depth 8\n"
            "AQIC 00.0004 enable isc 6: cc 0, E=1 R=0 F=0 A=0 I=1 RC=0x00 (NORMAL)\n"
            "AQIC 00.0004 enable isc 6: cc 3, E=1 R=0 F=0 A=0 I=1 RC=0x07 (OTHERWISE_CHANGED)\n"
            "ZAPQ 00.0004: cc 0, E=1 R=0 F=0 A=0 I=0 RC=0x00 (NORMAL)\n"
            "TAPQ 01.0004: cc 3, E=0 R=0 F=0 A=0 I=0 RC=0x01 (Q_NOT_AVAIL)\n"
            "apemu: ctl: RSA on 01.0004: cc 3, E=0 R=0 F=0 A=0 I=0 RC=0x01 (Q_NOT_AVAIL): ENODEV "
            "(No such device)\n"
            "rc=1\n"
            "not written\n"
            "QCI: cc 0\n"
            "apm 0x8000000000000000000000000000000000000000000000000000000000000000 (0)\n"
            "aqm 0x0800000000000000000000000000000000000000000000000000000000000000 (4)\n");
}

} // namespace
