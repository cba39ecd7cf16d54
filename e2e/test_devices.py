"""Settings → Sync → "Devices in this space" (issue 15, item 9): a paired device lists the
space's devices and removes another; the removed one's token stops working at once, so its
next sync fails and says it must be paired again."""

from __future__ import annotations

from playwright.sync_api import expect

from .harness import Devices, pair


def test_a_device_lists_the_space_and_removes_another(devices: Devices) -> None:
    (_, laptop), (_, phone) = devices.open(2)
    laptop.fill("#device-name", "laptop")
    phone.fill("#device-name", "phone")
    pair(laptop, phone)

    laptop.get_by_text("Devices in this space").click()
    rows = laptop.locator("#device-list li")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="laptop")).to_contain_text("this device")
    expect(rows.filter(has_text="phone")).to_contain_text("last seen")
    # This device has no Remove (it leaves with Leave); the other does.
    expect(rows.filter(has_text="laptop").get_by_role("button")).to_have_count(0)

    laptop.get_by_role("button", name="Remove “phone” from this space").click()
    expect(laptop.locator("#devices-status")).to_have_text(
        "Removed “phone”. It can join again with a pairing code."
    )
    expect(rows).to_have_count(1)

    phone.click("#sync-now")
    expect(phone.locator("#sync-indicator")).to_have_attribute("data-state", "error")
    expect(phone.locator("body")).not_to_have_attribute("data-sync", "synced")
