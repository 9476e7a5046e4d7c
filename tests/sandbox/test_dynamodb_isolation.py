"""Gap ``dynamodb-conditional-write``: a read never sees an UpdateItem half-applied, as on AWS.

moto applies an UpdateItem's actions one by one to the stored item; a GetItem beside it could
return some attributes updated and others not (a concurrent erasure read a journal entry with
its ``prev`` missing and forked its chain). The sandbox runs item operations one at a time."""

from __future__ import annotations

import threading

from securepipe.sandbox import start_sandbox


def test_a_read_beside_an_update_sees_the_item_whole() -> None:
    sb = start_sandbox()
    try:
        ddb = sb.session.client("dynamodb")
        ddb.create_table(TableName="isolation", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
        names = [f"a{n}" for n in range(12)]
        stop = threading.Event()
        torn: list[dict[str, object]] = []

        def write() -> None:
            for i in range(150):
                ddb.update_item(
                    TableName="isolation", Key={"k": {"S": "x"}},
                    UpdateExpression="SET " + ", ".join(f"{n} = :v" for n in names),
                    ExpressionAttributeValues={":v": {"N": str(i)}})
            stop.set()

        def read() -> None:
            reader = sb.session.client("dynamodb")
            while not stop.is_set():
                item = reader.get_item(TableName="isolation", Key={"k": {"S": "x"}},
                                       ConsistentRead=True).get("Item")
                if item and len({item.get(n, {}).get("N") for n in names}) != 1:
                    torn.append(item)

        threads = [threading.Thread(target=write), threading.Thread(target=read)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert torn == []
    finally:
        sb.close()
