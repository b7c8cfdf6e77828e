from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("password/done/", views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("keys/", views.api_keys_home, name="api_keys_home"),
    path("merchants/", views.merchants, name="merchants"),
    path("merchants/<int:merchant_id>/keys/", views.api_keys, name="api_keys"),
]
