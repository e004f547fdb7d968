"""connectors.filedrop.to_dossier: a file-drop record (world.md §4) into the canonical model."""

from __future__ import annotations

from datetime import datetime

from test_filedrop_scan import NOW, OLD, ROWS, csv_text, put

from connectors.filedrop import code_of, scan, to_dossier
from tthc.model import Attachment, Supplement
from tthc.timeutil import VN_TZ


def test_rows_of_a_file_map_to_dossiers(tmp_path):
    put(tmp_path, "thang10.csv", csv_text())
    batch = scan(tmp_path, set(), NOW)
    first, second, third = (to_dossier(r, "filedrop_xa_1") for r in batch.records)
    exported = datetime.fromtimestamp(OLD, tz=VN_TZ).replace(tzinfo=None, microsecond=0)

    assert first.raw_issues == {}
    assert (first.dossier_code, first.procedure_code, first.agency_code) == (
        "000.00.12.H40-261020-0001",
        "1.001234",
        "000.00.12.H40",
    )
    assert first.procedure_name == "Đăng ký khai sinh" and first.channel == 2
    assert first.applicant_name == "Nguyễn Thị Thuý" and first.applicant_id_type == 1
    assert first.applicant_birth_date == "1985-03-04" and first.applicant_sex == 2
    assert first.received_at == datetime(2026, 10, 20, 8, 30)
    assert first.due_at == datetime(2026, 10, 27, 17)
    assert first.finished_at == datetime(2026, 10, 24, 10) and first.returned_at is None
    assert (first.status, first.paid_online, first.fee) == (9, 1, 50000)
    assert first.supplements == [Supplement(datetime(2026, 10, 21, 9), datetime(2026, 10, 22, 14))]
    assert first.attachments == [Attachment("Thành phần hồ sơ", True)] and first.result_file
    assert first.updated_at == exported  # the dialect has no update time: the export time

    assert second.applicant_birth_date == "1960" and second.applicant_sex == 1
    assert second.supplements == [] and second.attachments == [Attachment("Thành phần hồ sơ", False)]
    assert second.result_file is None and second.fee == 0
    assert third.applicant_id_type == 2 and third.received_at == datetime(2026, 10, 22)
    assert third.paid_online == 0 and third.attachments == [] and third.raw_issues == {}
    assert code_of(batch.records[2]) == "000.00.12.H40-261022-0003"


def test_a_bad_value_quarantines_the_record_not_the_file(tmp_path):
    rows = [list(ROWS[0]), list(ROWS[1])]
    rows[1][9] = "21/13/2026"  # Ngày tiếp nhận: no 13th month
    rows[1][13] = "Chờ duyệt"  # Trạng thái outside the vocabulary
    put(tmp_path, "a.csv", csv_text(rows))
    batch = scan(tmp_path, set(), NOW)
    assert batch.files[0].status == "loaded"
    bad = to_dossier(batch.records[1], "s")
    assert bad.received_at is None and bad.raw_issues == {"received_at": "21/13/2026"}
    assert (bad.status, bad.status_raw) == (None, "Chờ duyệt")


def test_mapping_never_raises_on_odd_records():
    assert to_dossier({"_exported_at": "not a date"}, "s").updated_at is None
    assert to_dossier({"_exported_at": datetime(2026, 1, 1)}, "s").updated_at == datetime(2026, 1, 1)
    assert to_dossier(None, "s").raw_issues == {"record": "NoneType"}  # type: ignore[arg-type]


def test_every_supplement_round_listed_in_the_file(tmp_path):
    rows = [list(ROWS[0]), list(ROWS[1])]
    rows[0][16] = "21/10/2026 09:00; 23/10/2026 08:00"
    rows[0][17] = "22/10/2026 14:00; "  # the second round is still pending
    rows[1][16] = "21/10/2026 09:00; 23/10/2026 08:00"
    rows[1][17] = "22/10/2026 14:00; 24/10/2026 10:30"
    put(tmp_path, "a.csv", csv_text(rows, delimiter=";"))
    first, second = (to_dossier(r, "s") for r in scan(tmp_path, set(), NOW).records)
    assert first.supplements == [
        Supplement(datetime(2026, 10, 21, 9), datetime(2026, 10, 22, 14)),
        Supplement(datetime(2026, 10, 23, 8), None),
    ]
    assert second.supplements[1] == Supplement(datetime(2026, 10, 23, 8), datetime(2026, 10, 24, 10, 30))
    assert first.raw_issues == {} and second.raw_issues == {}
