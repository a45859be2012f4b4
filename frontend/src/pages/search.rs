//! Search the inventory, pick instances across pages, and ask for access.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use crate::api::{self, Instance, InstancePage, NewRequest, RequestDetail, q};
use crate::components::{ErrorBox, Load, Loading, load};
use crate::format::{duration_minutes, human_minutes, policy_outcome, split_ids};
use crate::session::use_session;

#[component]
pub fn SearchPage() -> impl IntoView {
    let session = use_session();
    let text = RwSignal::new(String::new());
    let environment = RwSignal::new(String::new());
    let platform = RwSignal::new(String::new());
    let state = RwSignal::new("running".to_owned());
    // Cursors of the pages before the current one, and the current one.
    let history: RwSignal<Vec<Option<String>>> = RwSignal::new(vec![]);
    let cursor: RwSignal<Option<String>> = RwSignal::new(None);
    let page: RwSignal<Load<InstancePage>> = RwSignal::new(Load::Loading);
    let selected: RwSignal<BTreeMap<String, Instance>> = RwSignal::new(BTreeMap::new());

    let fetch = move || {
        let mut query = vec!["limit=25".to_owned()];
        for (name, value) in [
            ("q", text.get_untracked()),
            ("environment", environment.get_untracked()),
            ("platform", platform.get_untracked()),
            ("state", state.get_untracked()),
        ] {
            if !value.trim().is_empty() {
                query.push(format!("{name}={}", q(value.trim())));
            }
        }
        if let Some(c) = cursor.get_untracked() {
            query.push(format!("cursor={}", q(&c)));
        }
        page.set(Load::Loading);
        let path = format!("/api/v1/instances?{}", query.join("&"));
        let token = session.bearer();
        load(page, async move { api::get(&path, &token).await });
    };
    fetch();
    let search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        history.set(vec![]);
        cursor.set(None);
        fetch();
    };
    let next = move |_| {
        if let Load::Ready(p) = page.get_untracked() {
            history.update(|h| h.push(cursor.get_untracked()));
            cursor.set(p.next_cursor.clone());
            fetch();
        }
    };
    let previous = move |_| {
        let mut h = history.get_untracked();
        if let Some(c) = h.pop() {
            history.set(h);
            cursor.set(c);
            fetch();
        }
    };
    let environments = move || session.me.get().map(|m| m.environments).unwrap_or_default();

    view! {
        <section class="card">
            <h1>"Find instances"</h1>
            <form class="filters" on:submit=search>
                <label>"Search"
                    <input type="search" name="q" placeholder="name, id, IP, tag value"
                        prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))/>
                </label>
                <label>"Environment"
                    <select name="environment" on:change=move |ev| environment.set(event_target_value(&ev))>
                        <option value="">"any"</option>
                        {move || environments().into_iter().map(|e| view! { <option value=e.name.clone()>{e.name.clone()}</option> }).collect_view()}
                    </select>
                </label>
                <label>"Platform"
                    <select name="platform" on:change=move |ev| platform.set(event_target_value(&ev))>
                        <option value="">"any"</option>
                        <option value="linux">"Linux"</option>
                        <option value="windows">"Windows"</option>
                    </select>
                </label>
                <label>"State"
                    <select name="state" on:change=move |ev| state.set(event_target_value(&ev))>
                        <option value="running" selected>"running"</option>
                        <option value="">"any"</option>
                        <option value="stopped">"stopped"</option>
                    </select>
                </label>
                <button type="submit" class="primary">"Search"</button>
            </form>
            {move || match page.get() {
                Load::Loading => view! { <Loading/> }.into_any(),
                Load::Failed(e) => view! { <ErrorBox message=e/> }.into_any(),
                Load::Ready(p) if p.items.is_empty() => view! { <p class="empty">"No instance matches."</p> }.into_any(),
                Load::Ready(p) => {
                    let has_next = p.next_cursor.is_some();
                    view! {
                        <table class="grid instances">
                            <thead><tr><th></th><th>"Name"</th><th>"Instance"</th><th>"Environment"</th>
                                <th>"Addresses"</th><th>"Platform"</th><th>"Tags"</th></tr></thead>
                            <tbody>
                                {p.items.into_iter().map(|i| {
                                    let id = i.id.clone();
                                    let id2 = i.id.clone();
                                    let row = i.clone();
                                    let checked = move || selected.get().contains_key(&id);
                                    let toggle = move |ev: leptos::ev::Event| {
                                        let on = event_target_checked(&ev);
                                        selected.update(|s| { if on { s.insert(row.id.clone(), row.clone()); } else { s.remove(&row.id); } });
                                    };
                                    let reason = i.not_grantable_reason.clone();
                                    let title = reason.clone().unwrap_or_default();
                                    let tags = i.tags.iter().filter(|(k, _)| k.as_str() != "Name")
                                        .map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
                                    view! {
                                        <tr class:disabled=!i.grantable title=title>
                                            <td><input type="checkbox" aria-label=format!("select {}", id2)
                                                data-instance=id2.clone()
                                                disabled=!i.grantable prop:checked=checked on:change=toggle/></td>
                                            <td>{i.name.clone()}
                                                {reason.map(|r| view! { <div class="why">{r}</div> })}</td>
                                            <td class="mono">{i.id.clone()}</td>
                                            <td>{i.environment.clone().unwrap_or_else(|| "—".into())}</td>
                                            <td class="mono">{i.private_ip.clone().unwrap_or_default()}
                                                {i.public_ip.clone().map(|p| format!(" · {p}"))}</td>
                                            <td>{i.platform.clone()}</td>
                                            <td class="tags">{tags}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                        <div class="pager">
                            <button class="secondary" on:click=previous disabled=move || history.get().is_empty()>"← Previous"</button>
                            <button class="secondary" on:click=next disabled=!has_next>"Next →"</button>
                        </div>
                    }.into_any()
                }
            }}
        </section>
        <Show when=move || !selected.get().is_empty()>
            <RequestForm selected=selected/>
        </Show>
    }
}

/// Ask for access to the selected instances.
#[component]
fn RequestForm(selected: RwSignal<BTreeMap<String, Instance>>) -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let colleagues = RwSignal::new(String::new());
    let include_me = RwSignal::new(true);
    let hours = RwSignal::new("1".to_owned());
    let minutes = RwSignal::new("0".to_owned());
    let reason = RwSignal::new(String::new());
    let ticket = RwSignal::new(String::new());
    let error: RwSignal<Option<String>> = RwSignal::new(None);
    let sending = RwSignal::new(false);

    let environment = move || {
        let envs: Vec<String> = selected
            .get()
            .values()
            .filter_map(|i| i.environment.clone())
            .collect();
        let first = envs.first().cloned();
        if envs.iter().all(|e| Some(e) == first.as_ref()) {
            first
        } else {
            None
        }
    };
    let policy = move || {
        let name = environment()?;
        session
            .me
            .get()?
            .environments
            .into_iter()
            .find(|e| e.name == name)
    };
    let subjects = move || {
        let me = session.me.get().map(|m| m.id).unwrap_or_default();
        let mut list = if include_me.get() { vec![me] } else { vec![] };
        for id in split_ids(&colleagues.get()) {
            if !list.contains(&id) {
                list.push(id);
            }
        }
        list
    };
    let outcome = move || {
        let p = policy()?;
        let me = session.me.get().map(|m| m.id).unwrap_or_default();
        let only_self = subjects() == vec![me];
        Some(match duration_minutes(&hours.get(), &minutes.get()) {
            Err(e) => Err(e),
            Ok(m) => policy_outcome(
                m,
                p.auto_approve_max_minutes,
                p.max_minutes,
                only_self,
                p.auto_approve_others,
            )
            .map(|o| format!("{} for {}", o, human_minutes(m))),
        })
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(env) = environment() else {
            error.set(Some("pick instances of one environment".into()));
            return;
        };
        let duration = match duration_minutes(&hours.get(), &minutes.get()) {
            Ok(d) => d,
            Err(e) => {
                error.set(Some(e));
                return;
            }
        };
        let body = NewRequest {
            environment: env,
            instance_ids: selected.get().keys().cloned().collect(),
            subjects: Some(subjects()),
            duration_minutes: duration,
            reason: reason.get(),
            ticket: Some(ticket.get()).filter(|t| !t.trim().is_empty()),
        };
        let token = session.bearer();
        let navigate = navigate.clone();
        sending.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::post::<RequestDetail>("/api/v1/requests", &token, &body).await {
                Ok(created) => {
                    selected.set(BTreeMap::new());
                    navigate(
                        &format!("/requests/{}", created.request.id),
                        Default::default(),
                    );
                }
                Err(e) => error.set(Some(e.to_string())),
            }
            sending.set(false);
        });
    };

    view! {
        <section class="card request-form">
            <h2>"Request access to " {move || selected.get().len()} " instance(s)"</h2>
            <ul class="chips">
                {move || selected.get().into_values().map(|i| {
                    let id = i.id.clone();
                    view! { <li>{i.name.clone()} " " <span class="mono">{i.id.clone()}</span>
                        <button class="link" aria-label=format!("remove {}", i.id)
                            on:click=move |_| selected.update(|s| { s.remove(&id); })>"×"</button></li> }
                }).collect_view()}
            </ul>
            <form on:submit=submit>
                <div class="row">
                    <label class="inline"><input type="checkbox" name="include_me" prop:checked=move || include_me.get()
                        on:change=move |ev| include_me.set(event_target_checked(&ev))/> " For me"</label>
                    <label class="grow">"Colleagues (user ids, comma-separated)"
                        <input name="colleagues" prop:value=move || colleagues.get()
                            on:input=move |ev| colleagues.set(event_target_value(&ev))/></label>
                </div>
                <div class="row">
                    <label>"Hours" <input name="hours" inputmode="numeric" size="3" prop:value=move || hours.get()
                        on:input=move |ev| hours.set(event_target_value(&ev))/></label>
                    <label>"Minutes" <input name="minutes" inputmode="numeric" size="3" prop:value=move || minutes.get()
                        on:input=move |ev| minutes.set(event_target_value(&ev))/></label>
                    <label>"Ticket" <input name="ticket" placeholder="OPS-1234" prop:value=move || ticket.get()
                        on:input=move |ev| ticket.set(event_target_value(&ev))/></label>
                </div>
                <label>"Reason"
                    <textarea name="reason" rows="2" required prop:value=move || reason.get()
                        on:input=move |ev| reason.set(event_target_value(&ev))></textarea></label>
                <p class="policy" aria-live="polite">
                    {move || match (environment(), policy(), outcome()) {
                        (None, _, _) => view! { <span class="error">"The selected instances belong to different environments."</span> }.into_any(),
                        (Some(env), Some(p), Some(o)) => view! {
                            <span>{if p.auto_approve_max_minutes == 0 {
                                format!("{env}: every request needs an approver; at most {}. ", human_minutes(p.max_minutes))
                            } else {
                                format!("{env}: up to {} approved at once, at most {}. ", human_minutes(p.auto_approve_max_minutes), human_minutes(p.max_minutes))
                            }}</span>
                            {match o {
                                Ok(text) => view! { <strong class="outcome">{format!("This request: {text}.")}</strong> }.into_any(),
                                Err(e) => view! { <strong class="error">{e}</strong> }.into_any(),
                            }}
                        }.into_any(),
                        (Some(env), _, _) => view! { <span>{format!("Environment {env}.")}</span> }.into_any(),
                    }}
                </p>
                {move || error.get().map(|e| view! { <ErrorBox message=e/> })}
                <button type="submit" class="primary" disabled=move || sending.get()>"Submit request"</button>
            </form>
        </section>
    }
}
