"""Test support for the MNO's CAMARA APIs: lines provisioned for an MVNO, and access tokens."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from conftest import api_key, json_of, settle
from flask.testing import FlaskClient

from simulators.core.identifiers import iccid_for, imsi_for, uk_fictitious_msisdn
from simulators.core.runtime import Runtime
from simulators.mno import model

ORDERS = "/mno/tmf-api/serviceOrdering/v4/serviceOrder"
TOKEN = "/mno/oauth2/token"
BC_AUTHORIZE = "/mno/oauth2/bc-authorize"
CIBA = "urn:openid:params:grant-type:ciba"
ALPHA_CLIENT = "mvno-alpha-camara"
BRAVO_CLIENT = "mvno-bravo-camara"
ALL_SCOPES = (
    "sim-swap device-roaming-status:read number-verification:verify "
    "number-verification:device-phone-number:read"
)


def basic(client_id: str, secret: str | None = None) -> dict[str, str]:
    credentials = f"{client_id}:{secret or api_key(client_id)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


@dataclass
class Line:
    service_id: str
    msisdn: str
    iccid: str
    imsi: str


@dataclass
class Network:
    """The host network as a CAMARA client's test sees it: lines of an MVNO, and tokens."""

    client: FlaskClient
    runtime: Runtime

    @property
    def mno(self) -> dict[str, str]:
        return {"X-API-Key": api_key("mvne-platform")}

    def order(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send a service order as the MVNE would and let the network complete it."""
        created = self.client.post(ORDERS, json=body, headers=self.mno)
        assert created.status_code == 201, created.get_data(as_text=True)
        settle(self.runtime, 3)
        done = json_of(self.client.get(created.headers["Location"], headers=self.mno))
        assert done["state"] in ("completed", "failed", "partial"), done
        return done

    def line(self, n: int, mvno: str | None = "mvno-alpha", service_type: str = "mobile") -> Line:
        """Provision line n (MSISDN +447700900<n>) for an MVNO; return it once active."""
        values = {
            "IMSI": imsi_for(n),
            "MSISDN": uk_fictitious_msisdn(n),
            "ICCID": iccid_for("44", "10", n),
            "serviceType": service_type,
        }
        body: dict[str, Any] = {
            "externalId": f"line-{n}",
            "serviceOrderItem": [
                {
                    "id": "1",
                    "action": "add",
                    "service": {
                        "serviceCharacteristic": [
                            {"name": name, "value": value} for name, value in values.items()
                        ]
                    },
                }
            ],
        }
        if mvno is not None:
            body["relatedParty"] = [{"id": mvno, "role": "mvno"}]
        done = self.order(body)
        assert done["state"] == "completed", done
        service_id = done["serviceOrderItem"][0]["service"]["id"]
        return Line(service_id, values["MSISDN"], values["ICCID"], values["IMSI"])

    def change_sim(self, line: Line, n: int, external_id: str = "sim-change") -> dict[str, Any]:
        """A SIM change: the line moves to SIM n (a new ICCID and its IMSI)."""
        iccid, imsi = iccid_for("44", "20", n), imsi_for(500_000 + n)
        done = self.order(
            {
                "externalId": external_id,
                "serviceOrderItem": [
                    {
                        "id": "1",
                        "action": "modify",
                        "service": {
                            "id": line.service_id,
                            "serviceCharacteristic": [
                                {"name": "ICCID", "value": iccid},
                                {"name": "IMSI", "value": imsi},
                            ],
                        },
                    }
                ],
            }
        )
        line.iccid, line.imsi = iccid, imsi
        return done

    def terminate(self, line: Line) -> None:
        done = self.order(
            {
                "externalId": f"delete-{line.service_id}",
                "serviceOrderItem": [
                    {"id": "1", "action": "delete", "service": {"id": line.service_id}}
                ],
            }
        )
        assert done["state"] == "completed", done

    def used(self, line: Line, visited_mcc: str | None, usage_type: str = "data") -> float:
        """The network records usage of the line, abroad on `visited_mcc` or at home (None);
        return when. The visited network is what the wholesale usage feed records."""
        now = self.runtime.clock.now()
        with self.runtime.store.write() as conn:
            model.record_traffic(
                conn,
                msisdn=line.msisdn,
                usage_type=usage_type,
                quantity=10,
                now=now,
                correlation_id=None,
                visited_mcc=visited_mcc,
            )
        return now

    def token(self, scope: str = ALL_SCOPES, client_id: str = ALPHA_CLIENT) -> str:
        """A two-legged (client credentials) access token."""
        response = self.client.post(
            TOKEN,
            data={"grant_type": "client_credentials", "scope": scope},
            headers=basic(client_id),
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        token: str = response.get_json()["access_token"]
        return token

    def authorize(self, msisdn: str, scope: str, client_id: str = ALPHA_CLIENT) -> str:
        """Start a CIBA request for the subscriber of `msisdn`; return its auth_req_id."""
        response = self.client.post(
            BC_AUTHORIZE,
            data={"scope": scope, "login_hint": f"tel:{msisdn}"},
            headers=basic(client_id),
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        auth_req_id: str = response.get_json()["auth_req_id"]
        return auth_req_id

    def poll(self, auth_req_id: str, client_id: str = ALPHA_CLIENT) -> Any:
        return self.client.post(
            TOKEN, data={"grant_type": CIBA, "auth_req_id": auth_req_id}, headers=basic(client_id)
        )

    def subscriber_token(
        self, line: Line, scope: str = ALL_SCOPES, client_id: str = ALPHA_CLIENT
    ) -> str:
        """A three-legged access token: the line's subscriber approves on the device."""
        auth_req_id = self.authorize(line.msisdn, scope, client_id)
        settle(self.runtime, 3)
        response = self.poll(auth_req_id, client_id)
        assert response.status_code == 200, response.get_data(as_text=True)
        token: str = response.get_json()["access_token"]
        return token
