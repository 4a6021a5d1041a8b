"""Queries on accounts, their contacts and services."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from store.models import Account, Contact, Service
from store.phone import stored_phone
from store.repositories.base import Repository


class AccountRepository(Repository):
    def create(self, *, code: str, name: str, unix_user: str, plan: str = "standard") -> Account:
        account = Account(code=code, name=name, unix_user=unix_user, plan=plan)
        self.session.add(account)
        self.session.flush()
        return account

    def get(self, account_id: int) -> Account:
        return self._get(Account, account_id, "account")

    def find(self, account_id: int) -> Account | None:
        return self.session.get(Account, account_id)

    def by_code(self, code: str) -> Account | None:
        return self.session.scalar(select(Account).where(Account.code == code))

    def page(self, *, offset: int = 0, limit: int = 50) -> tuple[list[Account], int]:
        total = self.session.scalar(select(func.count()).select_from(Account)) or 0
        rows = self.session.scalars(
            select(Account).order_by(Account.id).offset(offset).limit(limit)
        )
        return list(rows), total

    def add_contact(
        self,
        account_id: int,
        *,
        name: str,
        email: str,
        phone: str | None = None,
        is_primary: bool = False,
        language: str | None = None,
    ) -> Contact:
        contact = Contact(
            account_id=account_id,
            name=name,
            email=email.lower(),
            phone=stored_phone(phone),  # E.164 when it is a valid number
            is_primary=is_primary,
            language=language,
        )
        self.session.add(contact)
        self.session.flush()
        return contact

    def contacts(self, account_id: int) -> list[Contact]:
        q = select(Contact).where(Contact.account_id == account_id).order_by(Contact.id)
        return list(self.session.scalars(q))

    def contact_by_email(self, email: str) -> Contact | None:
        q = select(Contact).where(Contact.email == email.lower()).order_by(Contact.id).limit(1)
        return self.session.scalar(q)

    def add_service(
        self,
        account_id: int,
        *,
        kind: str,
        name: str,
        host_id: int | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Service:
        service = Service(
            account_id=account_id,
            kind=kind,
            name=name,
            host_id=host_id,
            attributes=attributes or {},
        )
        self.session.add(service)
        self.session.flush()
        return service

    def services(self, account_id: int) -> list[Service]:
        q = (
            select(Service)
            .where(Service.account_id == account_id)
            .order_by(Service.kind, Service.name)
        )
        return list(self.session.scalars(q))

    def services_of_kind(self, kind: str, *, hosted: bool = False) -> list[Service]:
        q = select(Service).where(Service.kind == kind)
        if hosted:
            q = q.where(Service.host_id.is_not(None))
        return list(self.session.scalars(q.order_by(Service.id)))

    def services_on_host(self, host_id: int) -> list[tuple[Service, Account]]:
        """Every service the SCDB has on a host, with its account."""
        q = (
            select(Service, Account)
            .join(Account, Account.id == Service.account_id)
            .where(Service.host_id == host_id)
            .order_by(Service.id)
        )
        return [(row[0], row[1]) for row in self.session.execute(q).all()]

    def service(self, service_id: int) -> Service | None:
        return self.session.get(Service, service_id)
